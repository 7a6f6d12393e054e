// LR schedules against transformers 4.48's get_scheduler and torch 1.13's ReduceLROnPlateau
// (golden/schedulers.json).
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/scheduler.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cmath>
#include <fstream>
#include <limits>

using hftrain::SchedulerType;
using hftrain::test::golden;
using hftrain::test::read_json;
using json = nlohmann::json;

namespace {

// The golden optimizer: two groups at `lr`, weight decay 0.01 and 0.0, as the Trainer builds them.
std::unique_ptr<hftrain::AdamW> two_group_adamw(double lr) {
  hftrain::ParamGroup decay, no_decay;
  decay.params = {at::zeros({2}).set_requires_grad(true)};
  no_decay.params = {at::zeros({2}).set_requires_grad(true)};
  decay.lr = no_decay.lr = lr;
  decay.weight_decay = 0.01;
  return std::make_unique<hftrain::AdamW>(std::vector<hftrain::ParamGroup>{decay, no_decay}, hftrain::AdamWOptions{});
}

// Golden README: about 1e-12 relative, or 1e-15 absolute near zero.
bool close(double got, double ref) { return std::abs(got - ref) <= std::max(1e-12 * std::abs(ref), 1e-15); }

SchedulerType type_of(const std::string& name) {
  for (const auto& [n, t] : hftrain::scheduler_type_names())
    if (n == name) return t;
  FAIL("golden type " << name << " is not a SchedulerType");
  return SchedulerType::kLinear;
}

// The golden case as the Trainer would build it: lr_scheduler_kwargs through
// scheduler_options_from_kwargs, which drops what get_scheduler 4.48 drops.
std::unique_ptr<hftrain::LRScheduler> scheduler_of(const json& c, hftrain::Optimizer& opt) {
  auto o = hftrain::scheduler_options_from_kwargs(type_of(c["type"]), c.value("num_warmup_steps", int64_t{0}),
                                                  c.value("num_training_steps", int64_t{0}),
                                                  c["scheduler_specific_kwargs"], "schedulers.json");
  return hftrain::scheduler_create(opt, o);
}

// Compares a torch value (as the scheduler's state_dict holds it) with the golden JSON, where
// Python's inf is written as the string "inf".
void require_same(const c10::IValue& got, const json& ref, const std::string& what) {
  INFO(what << ": golden " << ref.dump());
  if (ref.is_string() && (ref == "inf" || ref == "-inf")) {
    REQUIRE(got.isDouble());
    REQUIRE(got.toDouble() == (ref == "inf" ? 1 : -1) * std::numeric_limits<double>::infinity());
  } else if (ref.is_string()) {
    REQUIRE(got.isString());
    REQUIRE(got.toStringRef() == ref.get<std::string>());
  } else if (ref.is_boolean()) {
    REQUIRE(got.isBool());
    REQUIRE(got.toBool() == ref.get<bool>());
  } else if (ref.is_number_integer() && (got.isInt())) {
    REQUIRE(got.toInt() == ref.get<int64_t>());
  } else if (ref.is_number()) {
    // torch keeps min_lr=0 as the int 0; hftrain's min_lrs are floats (the same number).
    REQUIRE((got.isDouble() || got.isInt()));
    REQUIRE(close(got.isDouble() ? got.toDouble() : static_cast<double>(got.toInt()), ref.get<double>()));
  } else if (ref.is_array()) {
    REQUIRE(got.isList());
    auto list = got.toList();
    REQUIRE(list.size() == ref.size());
    for (size_t i = 0; i < ref.size(); ++i) require_same(list.get(i), ref[i], what + "[" + std::to_string(i) + "]");
  } else {
    FAIL("unexpected golden value");
  }
}

// torch.save's bytes and back, as scheduler.pt is written and read.
c10::IValue through_pickle(const c10::IValue& v) { return torch::jit::pickle_load(torch::jit::pickle_save(v)); }

}  // namespace

TEST_CASE("every lr_scheduler_type of transformers 4.48 gives HF's learning rate at every step, for both groups",
          "[unit][optim]") {
  json g = read_json(golden("schedulers.json"));
  std::map<std::string, int> cases_per_type;
  double max_rel = 0;
  for (const json& c : g["cases"]) {
    const std::string type = c["type"];
    ++cases_per_type[type];
    auto opt = two_group_adamw(c["base_lr"].get<double>());
    auto sched = scheduler_of(c, *opt);
    CHECK_FALSE(sched->steps_on_metric());
    const json& lr = c["lr"];
    const json& lr1 = c.contains("lr_group1") ? c["lr_group1"] : c["lr"];
    REQUIRE(lr.size() == static_cast<size_t>(c["num_training_steps"].get<int64_t>() + 4));
    for (size_t s = 0; s < lr.size(); ++s) {
      if (s > 0) sched->step();
      INFO(type << " " << c["scheduler_specific_kwargs"].dump() << " warmup " << c["num_warmup_steps"] << " step "
                << s);
      const double ref = lr[s].get<double>(), got = opt->param_groups()[0].lr;
      if (ref != 0) max_rel = std::max(max_rel, std::abs(got - ref) / std::abs(ref));
      REQUIRE(close(got, ref));
      REQUIRE(close(opt->param_groups()[1].lr, lr1[s].get<double>()));
      REQUIRE(sched->last_lr() == std::vector<double>{opt->param_groups()[0].lr, opt->param_groups()[1].lr});
    }
  }
  CHECK(max_rel <= 1e-12);  // measured: 0, every value is bit-identical
  for (const auto& name : g["scheduler_types_in_this_version"]) {
    INFO(name);
    if (name == "reduce_lr_on_plateau") continue;
    CHECK(cases_per_type[name.get<std::string>()] >= 2);
  }
  CHECK(cases_per_type.size() == 9);
}

TEST_CASE("the trainer's LambdaLR constructor gives HF's linear, cosine and constant_with_warmup", "[unit][optim]") {
  json g = read_json(golden("schedulers.json"));
  int cases = 0;
  for (const json& c : g["cases"]) {
    const std::string type = c["type"];
    if (type != "linear" && type != "cosine" && type != "constant_with_warmup") continue;
    if (!c["scheduler_specific_kwargs"].empty()) continue;
    ++cases;
    auto opt = two_group_adamw(c["base_lr"].get<double>());
    hftrain::LambdaLR sched(*opt, type_of(type), c["num_warmup_steps"].get<int64_t>(),
                            c["num_training_steps"].get<int64_t>());
    const json& lr = c["lr"];
    for (size_t s = 0; s < lr.size(); ++s) {
      if (s > 0) sched.step();
      INFO(type << " warmup " << c["num_warmup_steps"] << " step " << s);
      REQUIRE(close(opt->param_groups()[0].lr, lr[s].get<double>()));
      REQUIRE(close(opt->param_groups()[1].lr, lr[s].get<double>()));
    }
  }
  CHECK(cases == 5);  // linear x2, cosine x1 (the other sets num_cycles), constant_with_warmup x2
}

TEST_CASE("reduce_lr_on_plateau follows torch's ReduceLROnPlateau and ends with its state_dict", "[unit][optim]") {
  // Read in file order: the state dict's keys must come in torch's __dict__ order.
  std::ifstream in(golden("schedulers.json"));
  auto g = nlohmann::ordered_json::parse(in);
  int cases = 0;
  for (const auto& oc : g["reduce_lr_on_plateau"]) {
    ++cases;
    const json c = json::parse(oc.dump());
    INFO("kwargs " << c["scheduler_specific_kwargs"].dump());
    auto opt = two_group_adamw(c["base_lr"].get<double>());
    auto sched = scheduler_of(c, *opt);
    REQUIRE(sched->steps_on_metric());
    // torch's own settings after construction.
    auto initial = sched->state_dict().toGenericDict();
    for (const auto& [key, value] : c["effective_settings"].items()) {
      REQUIRE(initial.contains(key));
      require_same(initial.at(key), value, "effective_settings." + key);
    }
    CHECK_FALSE(initial.contains("_last_lr"));  // torch sets it on the first step
    // Stepping after each optimizer step changes nothing: only metrics move it.
    sched->step();
    const json& lr = c["lr"];
    const json& metrics = c["metrics"];
    REQUIRE(lr.size() == metrics.size() + 1);
    for (size_t i = 0; i < lr.size(); ++i) {
      if (i > 0) sched->step_metric(metrics[i - 1].get<double>());
      INFO("after metric " << i);
      REQUIRE(close(opt->param_groups()[0].lr, lr[i].get<double>()));
      REQUIRE(close(opt->param_groups()[1].lr, lr[i].get<double>()));
      REQUIRE(close(sched->last_lr()[0], lr[i].get<double>()));
    }
    auto end = sched->state_dict().toGenericDict();
    std::vector<std::string> keys, golden_keys;
    for (const auto& e : end) keys.push_back(e.key().toStringRef());
    for (const auto& [key, value] : oc["state_dict_at_end"].items()) golden_keys.push_back(key);
    CHECK(keys == golden_keys);
    for (const auto& [key, value] : c["state_dict_at_end"].items()) {
      REQUIRE(end.contains(key));
      require_same(end.at(key), value, "state_dict_at_end." + key);
    }
  }
  CHECK(cases == 2);
}

TEST_CASE("scheduler state round-trips through torch's pickle: a loaded LambdaLR continues with the same rates",
          "[unit][optim]") {
  json g = read_json(golden("schedulers.json"));
  int cases = 0;
  for (const json& c : g["cases"]) {
    ++cases;
    INFO(c["type"].get<std::string>() << " " << c["scheduler_specific_kwargs"].dump());
    auto opt_a = two_group_adamw(c["base_lr"]);
    auto a = scheduler_of(c, *opt_a);
    for (int i = 0; i < 7; ++i) a->step();
    auto opt_b = two_group_adamw(c["base_lr"]);
    auto b = scheduler_of(c, *opt_b);
    b->load_state_dict(through_pickle(a->state_dict()), "test");
    CHECK(b->last_lr() == a->last_lr());
    b->step();
    CHECK(close(opt_b->param_groups()[0].lr, c["lr"][8].get<double>()));
    CHECK(close(opt_b->param_groups()[1].lr, c["lr"][8].get<double>()));
    CHECK(static_cast<hftrain::LambdaLR&>(*b).last_epoch() == 8);
  }
  CHECK(cases == 20);
}

TEST_CASE("scheduler state_dict holds LambdaLR's keys in torch's order and values", "[unit][optim]") {
  json g = read_json(golden("schedulers.json"))["lambdalr_state_dict"];
  auto opt = two_group_adamw(1e-3);
  hftrain::LambdaLR sched(*opt, SchedulerType::kCosine, 2, 10);
  for (int i = 0; i < 3; ++i) sched.step();
  auto d = sched.state_dict().toGenericDict();
  std::vector<std::string> keys;
  for (const auto& e : d) keys.push_back(e.key().toStringRef());
  CHECK(keys == g["keys_in_order"].get<std::vector<std::string>>());
  const json& e = g["entries"];
  CHECK(d.at("last_epoch").toInt() == e["last_epoch"]["value"].get<int64_t>());
  CHECK(d.at("_step_count").toInt() == e["_step_count"]["value"].get<int64_t>());
  CHECK(d.at("verbose").toBool() == false);
  CHECK(d.at("_get_lr_called_within_step").toBool() == false);
  require_same(d.at("base_lrs"), e["base_lrs"]["value"], "base_lrs");
  require_same(d.at("_last_lr"), e["_last_lr"]["value"], "_last_lr");
  auto lambdas = d.at("lr_lambdas").toList();
  REQUIRE(lambdas.size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(lambdas.get(i).toGenericDict().size() == 0);
}

TEST_CASE("ReduceLROnPlateau state round-trips through torch's pickle mid-plateau and continues identically",
          "[unit][optim]") {
  json g = read_json(golden("schedulers.json"));
  const json& c = g["reduce_lr_on_plateau"][1];  // patience 2, cooldown 1: counters matter
  const json& metrics = c["metrics"];
  for (size_t cut : {size_t{0}, size_t{4}, size_t{9}, size_t{15}}) {
    INFO("saved after " << cut << " metrics");
    auto opt_a = two_group_adamw(c["base_lr"]);
    auto a = scheduler_of(c, *opt_a);
    for (size_t i = 0; i < cut; ++i) a->step_metric(metrics[i].get<double>());
    // A fresh run: optimizer.pt restores the groups' lr, scheduler.pt the rest (a different
    // construction, so that only the file can make them agree).
    auto opt_b = two_group_adamw(c["base_lr"]);
    for (size_t i = 0; i < 2; ++i) opt_b->param_groups()[i].lr = opt_a->param_groups()[i].lr;
    auto b = hftrain::scheduler_create(*opt_b, hftrain::scheduler_options_from_kwargs(
                                                   SchedulerType::kReduceLrOnPlateau, 0, 0, json::object(), ""));
    b->load_state_dict(through_pickle(a->state_dict()), "test");
    CHECK(b->state_dict().toGenericDict().size() == a->state_dict().toGenericDict().size());
    for (size_t i = cut; i < metrics.size(); ++i) {
      b->step_metric(metrics[i].get<double>());
      REQUIRE(close(opt_b->param_groups()[0].lr, c["lr"][i + 1].get<double>()));
    }
    auto& p = static_cast<hftrain::ReduceLROnPlateau&>(*b).options();
    CHECK(p.patience == 2);
    CHECK(p.cooldown == 1);
  }
}

TEST_CASE("scheduler_quirk names what get_scheduler 4.48 silently ignores", "[unit][optim]") {
  using hftrain::scheduler_quirk;
  CHECK_THAT(scheduler_quirk(SchedulerType::kInverseSqrt, {"timescale"}, 4), Catch::Contains("timescale"));
  CHECK_THAT(scheduler_quirk(SchedulerType::kConstant, {}, 5), Catch::Contains("warmup"));
  CHECK_THAT(scheduler_quirk(SchedulerType::kConstant, {"foo"}, 0), Catch::Contains("foo"));
  CHECK_THAT(scheduler_quirk(SchedulerType::kConstantWithWarmup, {"num_cycles"}, 7), Catch::Contains("num_cycles"));
  CHECK_THAT(scheduler_quirk(SchedulerType::kReduceLrOnPlateau, {}, 3), Catch::Contains("warmup"));
  CHECK(scheduler_quirk(SchedulerType::kConstant, {}, 0).empty());
  CHECK(scheduler_quirk(SchedulerType::kConstantWithWarmup, {}, 7).empty());
  CHECK(scheduler_quirk(SchedulerType::kInverseSqrt, {}, 4).empty());
  CHECK(scheduler_quirk(SchedulerType::kCosine, {"num_cycles"}, 5).empty());
  CHECK(scheduler_quirk(SchedulerType::kWarmupStableDecay, {"num_stable_steps", "num_decay_steps"}, 5).empty());
  // Where a golden case shows a quirk, scheduler_quirk reports it.
  json g = read_json(golden("schedulers.json"));
  for (const json& c : g["cases"]) {
    const std::string type = c["type"];
    std::vector<std::string> given;
    for (const auto& [k, v] : c["scheduler_specific_kwargs"].items()) given.push_back(k);
    const bool quirk = (type == "constant" && c["num_warmup_steps"] > 0) ||
                       ((type == "inverse_sqrt" || type == "constant_with_warmup") && !given.empty());
    INFO(type << " " << c["scheduler_specific_kwargs"].dump() << " warmup " << c["num_warmup_steps"]);
    CHECK(scheduler_quirk(type_of(type), given, c["num_warmup_steps"]).empty() == !quirk);
  }
}

TEST_CASE("scheduler_kwargs_keys lists what get_scheduler 4.48 passes on", "[unit][optim]") {
  using hftrain::scheduler_kwargs_keys;
  using V = std::vector<std::string>;
  CHECK(scheduler_kwargs_keys(SchedulerType::kLinear).empty());
  CHECK(scheduler_kwargs_keys(SchedulerType::kConstant).empty());
  CHECK(scheduler_kwargs_keys(SchedulerType::kConstantWithWarmup).empty());
  CHECK(scheduler_kwargs_keys(SchedulerType::kInverseSqrt).empty());
  CHECK(scheduler_kwargs_keys(SchedulerType::kCosine) == V{"num_cycles"});
  CHECK(scheduler_kwargs_keys(SchedulerType::kCosineWithRestarts) == V{"num_cycles"});
  CHECK(scheduler_kwargs_keys(SchedulerType::kPolynomial) == V{"lr_end", "power"});
  CHECK(scheduler_kwargs_keys(SchedulerType::kCosineWithMinLr) == V{"num_cycles", "min_lr", "min_lr_rate"});
  CHECK(scheduler_kwargs_keys(SchedulerType::kWarmupStableDecay) ==
        V{"num_stable_steps", "num_decay_steps", "min_lr_ratio", "num_cycles"});
  CHECK(scheduler_kwargs_keys(SchedulerType::kReduceLrOnPlateau) ==
        V{"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps", "verbose"});
  // Every golden case's kwargs are known to its type, or dropped by HF.
  json g = read_json(golden("schedulers.json"));
  for (const json& c : g["cases"]) {
    auto keys = scheduler_kwargs_keys(type_of(c["type"]));
    for (const auto& [k, v] : c["scheduler_specific_kwargs"].items()) {
      INFO(c["type"] << " " << k);
      CHECK((std::find(keys.begin(), keys.end(), k) != keys.end() || c["type"] == "inverse_sqrt"));
    }
  }
}

TEST_CASE("lr_scheduler_kwargs: defaults are HF's and dropped kwargs stay dropped", "[unit][optim]") {
  using hftrain::scheduler_options_from_kwargs;
  auto restarts = scheduler_options_from_kwargs(SchedulerType::kCosineWithRestarts, 0, 10, json::object(), "");
  CHECK(restarts.num_cycles_or_default() == 1.0);
  auto cosine = scheduler_options_from_kwargs(SchedulerType::kCosine, 0, 10, json::object(), "");
  CHECK(cosine.num_cycles_or_default() == 0.5);
  auto poly = scheduler_options_from_kwargs(SchedulerType::kPolynomial, 0, 10, json::object(), "");
  CHECK(poly.lr_end == 1e-7);
  CHECK(poly.power == 1.0);
  auto inv = scheduler_options_from_kwargs(SchedulerType::kInverseSqrt, 4, 20, {{"timescale", 5}}, "");
  CHECK_FALSE(inv.timescale.has_value());
  auto constant = scheduler_options_from_kwargs(SchedulerType::kConstant, 5, 20, {{"anything", 1}}, "");
  CHECK(hftrain::lr_lambda(constant, 1e-3, 0) == 1.0);
  auto plateau = scheduler_options_from_kwargs(
      SchedulerType::kReduceLrOnPlateau, 0, 0,
      {{"mode", "max"}, {"threshold_mode", "abs"}, {"min_lr", {1e-5, 2e-5}}, {"verbose", false}}, "");
  CHECK(plateau.plateau.mode == hftrain::PlateauOptions::Mode::kMax);
  CHECK(plateau.plateau.threshold_mode == hftrain::PlateauOptions::ThresholdMode::kAbs);
  CHECK(plateau.plateau.min_lrs == std::vector<double>{1e-5, 2e-5});
  // timescale set in code (not through HF's get_scheduler) is used.
  hftrain::SchedulerOptions o;
  o.type = SchedulerType::kInverseSqrt;
  o.num_warmup_steps = 4;
  o.timescale = 5;
  CHECK(hftrain::lr_lambda(o, 1e-3, 5) == 1.0 / std::sqrt(6.0 / 5.0));
}

TEST_CASE("bad lr_scheduler_kwargs are user errors naming the key", "[unit][optim]") {
  using hftrain::Error;
  using hftrain::scheduler_options_from_kwargs;
  using hftrain::test::require_error;
  auto opts = [](SchedulerType t, json kwargs) {
    return [t, kwargs] { scheduler_options_from_kwargs(t, 2, 10, kwargs, "run.yaml:7"); };
  };
  require_error(Error::kUser, opts(SchedulerType::kCosine, {{"num_cycle", 2}}),
                {"lr_scheduler_kwargs.num_cycle", "known: num_cycles", "did you mean \"num_cycles\"", "run.yaml:7"});
  require_error(Error::kUser, opts(SchedulerType::kLinear, {{"num_cycles", 2}}),
                {"lr_scheduler_kwargs.num_cycles has no meaning for lr_scheduler_type linear", "takes none"});
  require_error(Error::kUser, opts(SchedulerType::kPolynomial, {{"power", "two"}}),
                {"lr_scheduler_kwargs.power must be a number", "\"two\"", "run.yaml:7"});
  require_error(Error::kUser, opts(SchedulerType::kWarmupStableDecay, {{"num_decay_steps", 5}}),
                {"lr_scheduler_kwargs.num_stable_steps is required"});
  require_error(Error::kUser,
                opts(SchedulerType::kWarmupStableDecay, {{"num_stable_steps", 2.5}, {"num_decay_steps", 5}}),
                {"lr_scheduler_kwargs.num_stable_steps must be an integer"});
  require_error(Error::kUser, opts(SchedulerType::kCosineWithMinLr, json::object()), {"min_lr", "min_lr_rate"});
  require_error(Error::kUser, opts(SchedulerType::kCosineWithMinLr, {{"min_lr", 1e-5}, {"min_lr_rate", 0.1}}),
                {"only one of min_lr or min_lr_rate"});
  require_error(Error::kUser, opts(SchedulerType::kReduceLrOnPlateau, {{"mode", "mn"}}),
                {"lr_scheduler_kwargs.mode must be one of min, max"});
  require_error(Error::kUser, opts(SchedulerType::kReduceLrOnPlateau, {{"factor", 1.5}}),
                {"lr_scheduler_kwargs.factor", "< 1.0"});
  require_error(Error::kUser, opts(SchedulerType::kReduceLrOnPlateau, {{"patience", -1}}),
                {"lr_scheduler_kwargs.patience must be an integer >= 0"});
  require_error(Error::kUser, opts(SchedulerType::kCosine, json::array({1})),
                {"lr_scheduler_kwargs must be a mapping"});
  // get_scheduler's construction-time checks.
  auto opt = two_group_adamw(1e-3);
  require_error(Error::kUser,
                [&] {
                  hftrain::scheduler_create(*opt, scheduler_options_from_kwargs(SchedulerType::kPolynomial, 0, 10,
                                                                                {{"lr_end", 1e-3}}, ""));
                },
                {"lr_end (0.001) must be smaller than initial lr (0.001)"});
  auto opt2 = two_group_adamw(1e-3);
  require_error(Error::kUser,
                [&] {
                  hftrain::scheduler_create(*opt2, scheduler_options_from_kwargs(SchedulerType::kReduceLrOnPlateau,
                                                                                 0, 0, {{"min_lr", {0.1}}}, ""));
                },
                {"lr_scheduler_kwargs.min_lr", "expected 2"});
}
