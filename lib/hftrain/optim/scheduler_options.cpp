// lr_scheduler_kwargs -> SchedulerOptions, as transformers 4.48's get_scheduler passes them:
//   constant                           get_constant_schedule(optimizer): nothing else
//   reduce_lr_on_plateau               ReduceLROnPlateau(optimizer, **kwargs)
//   constant_with_warmup, inverse_sqrt schedule(optimizer, num_warmup_steps=...): kwargs dropped
//   warmup_stable_decay                schedule(optimizer, num_warmup_steps=..., **kwargs)
//   the others                         schedule(optimizer, num_warmup_steps=..., num_training_steps=..., **kwargs)
#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/optim/scheduler.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace hftrain {

namespace {

// Types whose kwargs get_scheduler 4.48 drops without a word.
bool drops_kwargs(SchedulerType t) {
  return t == SchedulerType::kConstant || t == SchedulerType::kConstantWithWarmup ||
         t == SchedulerType::kInverseSqrt;
}

// One kwarg being read: its value and how to name it in an error.
struct Kwarg {
  const std::string& key;
  const nlohmann::json& v;
  const std::string& where;

  [[noreturn]] void bad(const std::string& expected) const {
    fail("lr_scheduler_kwargs.{} must be {}, got {}{}", key, expected, v.dump(),
         where.empty() ? "" : " (from " + where + ")");
  }
  double number() const {
    if (!v.is_number()) bad("a number");
    return v.get<double>();
  }
  int64_t count() const {  // steps, patience, cooldown
    if (!v.is_number_integer() || v.get<int64_t>() < 0) bad("an integer >= 0");
    return v.get<int64_t>();
  }
  bool boolean() const {
    if (!v.is_boolean()) bad("true or false");
    return v.get<bool>();
  }
  std::string choice(std::initializer_list<const char*> choices) const {
    std::vector<std::string> names(choices.begin(), choices.end());
    if (!v.is_string() || std::find(names.begin(), names.end(), v.get<std::string>()) == names.end())
      bad("one of " + join(names, ", "));
    return v.get<std::string>();
  }
};

void read_plateau_kwarg(const Kwarg& k, PlateauOptions& p) {
  if (k.key == "mode") {
    p.mode = k.choice({"min", "max"}) == "min" ? PlateauOptions::Mode::kMin : PlateauOptions::Mode::kMax;
  } else if (k.key == "factor") {
    p.factor = k.number();
    if (!(p.factor < 1.0)) k.bad("< 1.0 (torch: \"Factor should be < 1.0.\")");
  } else if (k.key == "patience") {
    p.patience = k.count();
  } else if (k.key == "threshold") {
    p.threshold = k.number();
  } else if (k.key == "threshold_mode") {
    p.threshold_mode =
        k.choice({"rel", "abs"}) == "rel" ? PlateauOptions::ThresholdMode::kRel : PlateauOptions::ThresholdMode::kAbs;
  } else if (k.key == "cooldown") {
    p.cooldown = k.count();
  } else if (k.key == "min_lr") {
    // A number, or torch's list form with one value per parameter group (checked at creation).
    if (k.v.is_array()) {
      for (const auto& e : k.v) {
        if (!e.is_number()) k.bad("a number or a list of numbers");
        p.min_lrs.push_back(e.get<double>());
      }
    } else {
      p.min_lr = k.number();
    }
  } else if (k.key == "eps") {
    p.eps = k.number();
  } else if (k.key == "verbose") {
    p.verbose = k.boolean();
  }
}

}  // namespace

std::vector<std::string> scheduler_kwargs_keys(SchedulerType t) {
  switch (t) {
    case SchedulerType::kCosine:
    case SchedulerType::kCosineWithRestarts:
      return {"num_cycles"};
    case SchedulerType::kPolynomial:
      return {"lr_end", "power"};
    case SchedulerType::kReduceLrOnPlateau:
      return {"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps", "verbose"};
    case SchedulerType::kCosineWithMinLr:
      return {"num_cycles", "min_lr", "min_lr_rate"};
    case SchedulerType::kWarmupStableDecay:
      return {"num_stable_steps", "num_decay_steps", "min_lr_ratio", "num_cycles"};
    case SchedulerType::kLinear:
    case SchedulerType::kConstant:
    case SchedulerType::kConstantWithWarmup:
    case SchedulerType::kInverseSqrt:
      break;
  }
  return {};
}

std::string scheduler_quirk(SchedulerType t, const std::vector<std::string>& given_kwargs, int64_t warmup) {
  const std::string kwargs = join(given_kwargs, ", ");
  switch (t) {
    case SchedulerType::kConstant: {
      if (warmup <= 0 && given_kwargs.empty()) return "";
      std::vector<std::string> ignored;
      if (warmup > 0) ignored.push_back(fmt::format("its {} warmup steps", warmup));
      if (!given_kwargs.empty()) ignored.push_back("lr_scheduler_kwargs (" + kwargs + ")");
      return "transformers 4.48 runs constant without " + join(ignored, " and ") +
             ": get_scheduler passes the optimizer only; constant_with_warmup has a warmup";
    }
    case SchedulerType::kConstantWithWarmup:
    case SchedulerType::kInverseSqrt:
      if (given_kwargs.empty()) return "";
      return fmt::format("transformers 4.48 ignores lr_scheduler_kwargs ({}) for {}: get_scheduler passes only "
                         "num_warmup_steps{}",
                         kwargs, to_string(t),
                         t == SchedulerType::kInverseSqrt ? ", so timescale is num_warmup_steps (10000 when 0)" : "");
    case SchedulerType::kReduceLrOnPlateau:
      if (warmup <= 0) return "";
      return fmt::format("transformers 4.48 runs reduce_lr_on_plateau without its {} warmup steps: get_scheduler "
                         "passes only lr_scheduler_kwargs",
                         warmup);
    default:
      return "";
  }
}

SchedulerOptions scheduler_options_from_kwargs(SchedulerType type, int64_t warmup, int64_t total,
                                               const nlohmann::json& kwargs, const std::string& where) {
  const std::string from = where.empty() ? "" : " (from " + where + ")";
  HFT_CHECK(kwargs.is_object() || kwargs.is_null(), "lr_scheduler_kwargs must be a mapping, got {}{}", kwargs.dump(),
            from);
  SchedulerOptions o;
  o.type = type;
  o.num_warmup_steps = warmup;
  o.num_training_steps = total;
  if (drops_kwargs(type) || kwargs.is_null()) return o;

  const std::vector<std::string> known = scheduler_kwargs_keys(type);
  for (const auto& [key, value] : kwargs.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string hint = known.empty() ? "it takes none" : "known: " + join(known, ", ");
      const std::string near = nearest_name(key, known);
      if (!near.empty()) hint += "; did you mean \"" + near + "\"?";
      fail("lr_scheduler_kwargs.{} has no meaning for lr_scheduler_type {}; {}{}", key, to_string(type), hint, from);
    }
    const Kwarg k{key, value, where};
    if (type == SchedulerType::kReduceLrOnPlateau) {
      read_plateau_kwarg(k, o.plateau);
    } else if (key == "num_cycles") {
      o.num_cycles = k.number();
    } else if (key == "lr_end") {
      o.lr_end = k.number();
    } else if (key == "power") {
      o.power = k.number();
    } else if (key == "min_lr") {
      o.min_lr = k.number();
    } else if (key == "min_lr_rate") {
      o.min_lr_rate = k.number();
    } else if (key == "num_stable_steps") {
      o.num_stable_steps = k.count();
    } else if (key == "num_decay_steps") {
      o.num_decay_steps = k.count();
    } else if (key == "min_lr_ratio") {
      o.min_lr_ratio = k.number();
    }
  }

  // get_scheduler's own refusals, raised here rather than at the first step.
  if (type == SchedulerType::kCosineWithMinLr) {
    HFT_CHECK(!(o.min_lr && o.min_lr_rate),
              "lr_scheduler_kwargs: only one of min_lr or min_lr_rate should be set for cosine_with_min_lr{}", from);
    HFT_CHECK(o.min_lr || o.min_lr_rate,
              "lr_scheduler_kwargs: cosine_with_min_lr needs min_lr or min_lr_rate (HF: \"One of min_lr or "
              "min_lr_rate should be set through the `lr_scheduler_kwargs`\"){}",
              from);
  }
  if (type == SchedulerType::kWarmupStableDecay) {
    for (const char* key : {"num_stable_steps", "num_decay_steps"})
      HFT_CHECK(kwargs.contains(key),
                "lr_scheduler_kwargs.{} is required for warmup_stable_decay (transformers 4.48 has no default; the "
                "schedule is num_warmup_steps + num_stable_steps + num_decay_steps long){}",
                key, from);
  }
  return o;
}

}  // namespace hftrain
