#include "hftrain/config/fields_rules.h"

#include "hftrain/config/sharding.h"

#include "hftrain/optim/optimizer_entry.h"
#include "hftrain/optim/optimizer_factory.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"

#include <algorithm>
#include <cmath>

namespace hftrain {

using json = nlohmann::json;

namespace {

// ---- HF's __post_init__ and cross-field rules ------------------------------------------

// optim_args "k=v,k=v" as HF splits it (spaces removed), values read as true/false, numbers or
// text. HF 4.48 passes optim_args to few optimizers and ignores them for the rest; hftrain
// passes them to its optimizers' options and refuses a key the optimizer does not have.
void parse_optim_args(TrainingArguments& a, const Ctx& c) {
  a.optim_kwargs = json::object();
  if (!a.optim_args) return;
  std::string text;
  for (char ch : *a.optim_args)
    if (ch != ' ') text += ch;
  const OptimizerEntry* entry = optimizer_find(a.optim);  // the optim binding let only these through
  const std::vector<std::string> known = entry ? entry->optim_args : std::vector<std::string>{};
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("optim_args expects key=value pairs separated by commas, got \"{}\" (from {})", item, c.where("optim_args"));
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (known.empty())
      fail("optim_args has no meaning for optim {}; it takes its settings from adam_beta1/2, adam_epsilon and "
           "weight_decay (from {})",
           a.optim, c.where("optim_args"));
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail("optim_args: {} (from {})", unknown_name_message(a.optim + " option", key, known),
           c.where("optim_args"));
    json v;
    if (value == "True" || value == "true") v = true;
    else if (value == "False" || value == "false") v = false;
    else if (value == "None" || value == "none") v = nullptr;
    else {
      char* end = nullptr;
      const double d = std::strtod(value.c_str(), &end);
      if (end && *end == '\0' && !value.empty()) v = d;
      else v = value;
    }
    a.optim_kwargs[key] = v;
  }
}


}  // namespace

namespace {

// gradient_checkpointing_kwargs: torch.utils.checkpoint's keywords, as a mapping or its JSON
// text (HF accepts both). hftrain's recompute restores the RNG state and is the same
// computation with either use_reentrant; what would change the gradients is refused.
void check_checkpointing_kwargs(TrainingArguments& a, const Ctx& c) {
  json& k = a.gradient_checkpointing_kwargs;
  if (k.is_string()) {
    k = json::parse(k.get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (k.is_discarded()) c.bad("gradient_checkpointing_kwargs", a.gradient_checkpointing_kwargs, "a mapping or its JSON text");
  }
  if (k.is_null()) return;
  if (!k.is_object()) c.bad("gradient_checkpointing_kwargs", k, "a mapping");
  for (const auto& [key, v] : k.items()) {
    if (key == "use_reentrant" || key == "preserve_rng_state") {
      if (!v.is_boolean()) c.bad("gradient_checkpointing_kwargs", v, key + " as true or false");
      if (key == "preserve_rng_state" && !v.get<bool>())
        fail("gradient_checkpointing_kwargs.preserve_rng_state false is not supported: hftrain's recompute replays "
             "dropout's masks, so that gradients equal those without checkpointing (from {})",
             c.where("gradient_checkpointing_kwargs"));
      continue;
    }
    fail("gradient_checkpointing_kwargs: {} is not supported; hftrain takes use_reentrant and preserve_rng_state "
         "(from {})",
         clip(key), c.where("gradient_checkpointing_kwargs"));
  }
}

}  // namespace

void post_init(TrainingArguments& a, const Ctx& c, bool has_eval_dataset) {
  auto check = [&](bool ok, const std::string& key, const std::string& msg) {
    if (!ok) fail("{} (from {})", msg, c.where(key));
  };
  check_checkpointing_kwargs(a, c);
  for (const std::string& v : a.include_for_metrics)
    check(v == "inputs" || v == "loss", "include_for_metrics",
          fmt::format("include_for_metrics takes \"inputs\" and \"loss\", got \"{}\"", v));
  check(!a.generation_max_length || *a.generation_max_length > 0, "generation_max_length",
        "generation_max_length must be > 0");

  const bool steps_log = a.logging_strategy == IntervalStrategy::kSteps;
  const bool steps_eval = a.eval_strategy == IntervalStrategy::kSteps;
  const bool steps_save = a.save_strategy == SaveStrategy::kSteps;
  if (a.eval_strategy != IntervalStrategy::kNo) a.do_eval = true;
  if (a.group_by_length) a.train_sampling_strategy = TrainSampling::kGroupByLength;
  check(a.dataloader_num_workers >= 0, "dataloader_num_workers",
        fmt::format("--dataloader_num_workers must be >= 0, got {}", a.dataloader_num_workers));
  check(a.dataloader_num_workers > 0 || !a.dataloader_prefetch_factor, "dataloader_prefetch_factor",
        "--dataloader_prefetch_factor can only be set when data is loaded in a different process, i.e. when "
        "--dataloader_num_workers > 1.");
  check(!a.dataloader_prefetch_factor || *a.dataloader_prefetch_factor > 0, "dataloader_prefetch_factor",
        "--dataloader_prefetch_factor must be > 0");
  // eval_steps falls back to logging_steps.
  if (steps_eval && (!a.eval_steps || *a.eval_steps == 0)) {
    check(a.logging_steps > 0, "eval_steps",
          "evaluation strategy steps requires either non-zero --eval_steps or --logging_steps");
    a.eval_steps = a.logging_steps;
  }
  check(!steps_log || a.logging_steps != 0, "logging_steps", "logging strategy steps requires non-zero --logging_steps");
  auto integral_above_one = [&](bool applies, double v, const char* key) {
    check(!applies || v <= 1 || std::floor(v) == v, key,
          fmt::format("--{} must be an integer if bigger than 1: {}", key, v));
  };
  integral_above_one(steps_log, a.logging_steps, "logging_steps");
  integral_above_one(steps_eval, a.eval_steps.value_or(0), "eval_steps");
  integral_above_one(steps_save, a.save_steps, "save_steps");
  if (a.load_best_model_at_end && a.save_strategy != SaveStrategy::kBest) {
    check(static_cast<int>(a.eval_strategy) == static_cast<int>(a.save_strategy), "load_best_model_at_end",
          fmt::format("--load_best_model_at_end requires the save and eval strategy to match, but found evaluation "
                      "strategy {} and save strategy {}",
                      to_string(a.eval_strategy), to_string(a.save_strategy)));
    if (steps_eval && a.save_steps >= 1 && a.eval_steps.value_or(0) >= 1) {
      const double ratio = a.save_steps / *a.eval_steps;
      check(std::floor(ratio) == ratio, "load_best_model_at_end",
            fmt::format("--load_best_model_at_end requires the saving steps to be a round multiple of the "
                        "evaluation steps, but found {}, which is not a round multiple of {}.",
                        a.save_steps, *a.eval_steps));
    }
  }
  if ((a.load_best_model_at_end || a.save_strategy == SaveStrategy::kBest) && !a.metric_for_best_model)
    a.metric_for_best_model = "loss";
  if (a.metric_for_best_model && !a.greater_is_better) {
    const std::string& m = *a.metric_for_best_model;
    a.greater_is_better = !(m.size() >= 4 && m.compare(m.size() - 4, 4, "loss") == 0);
  }
  check(!(a.fp16 && a.bf16), "fp16", "At most one of fp16 and bf16 can be True, but not both");
  check(!(a.fp16_full_eval && a.bf16_full_eval), "fp16_full_eval",
        "At most one of fp16 and bf16 can be True for full eval, but not both");
  check(a.warmup_ratio >= 0 && a.warmup_ratio <= 1, "warmup_ratio", "warmup_ratio must lie in range [0,1]");
  check(a.warmup_steps >= 0 && (a.warmup_steps < 1 || std::floor(a.warmup_steps) == a.warmup_steps), "warmup_steps",
        "warmup_steps must be of type int and must be 0 or a positive integer (or a float below 1: a ratio)");
  // HF: "You have set args.eval_strategy to steps but you didn't pass an eval_dataset".
  check(a.eval_strategy == IntervalStrategy::kNo || has_eval_dataset, "eval_strategy",
        fmt::format("eval_strategy is {} but there is no eval dataset: set data.eval or "
                    "data.validation_split_percentage",
                    to_string(a.eval_strategy)));
  check(!a.load_best_model_at_end || has_eval_dataset, "load_best_model_at_end",
        "load_best_model_at_end needs an eval dataset");
  if (a.run_name.empty()) a.run_name = a.output_dir;
  if (a.logging_dir.empty()) a.logging_dir = a.output_dir + "/runs";
  if (!a.disable_tqdm) a.disable_tqdm = false;
  // "all" is every integration hftrain has: tensorboard.
  if (a.report_to.size() == 1 && a.report_to[0] == "none") a.report_to.clear();
  if (a.report_to.size() == 1 && a.report_to[0] == "all") a.report_to = {"tensorboard"};

  // lr_scheduler_kwargs are checked against the chosen schedule where the scheduler is built
  // (optim/scheduler: scheduler_options_from_kwargs), before anything is written.
  // HF: reduce_lr_on_plateau steps on metric_for_best_model, "loss" unless set.
  if (a.lr_scheduler_type == SchedulerType::kReduceLrOnPlateau && !a.metric_for_best_model) {
    a.metric_for_best_model = "loss";
    if (!a.greater_is_better) a.greater_is_better = false;
  }
  parse_optim_args(a, c);
  resolve_sharding(a, c);
  check(!a.predict_with_generate || a.zero_stage < 3, "predict_with_generate",
        "predict_with_generate does not work with fully sharded data parallel (fsdp full_shard / ZeRO 3): the ranks "
        "would generate different lengths through collective forwards");

  // Ranges HF does not check (accepted_by_hf.json): refused deliberately, since such a run
  // cannot be meant.
  auto range = [&](bool ok, const char* key, double v, const char* rule) {
    check(ok, key, fmt::format("{} must be {}, got {}", key, rule, v));
  };
  range(std::isfinite(a.learning_rate) && a.learning_rate >= 0, "learning_rate", a.learning_rate, ">= 0");
  range(a.weight_decay >= 0, "weight_decay", a.weight_decay, ">= 0");
  range(a.adam_beta1 >= 0 && a.adam_beta1 < 1, "adam_beta1", a.adam_beta1, "in [0, 1)");
  range(a.adam_beta2 >= 0 && a.adam_beta2 < 1, "adam_beta2", a.adam_beta2, "in [0, 1)");
  range(a.adam_epsilon >= 0, "adam_epsilon", a.adam_epsilon, ">= 0");
  range(a.num_train_epochs >= 0, "num_train_epochs", a.num_train_epochs, ">= 0");
  range(a.max_steps != 0 && a.max_steps >= -1, "max_steps", a.max_steps, "> 0, or -1 to use num_train_epochs");
  range(a.per_device_train_batch_size >= 1, "per_device_train_batch_size", a.per_device_train_batch_size, ">= 1");
  range(a.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", a.per_device_eval_batch_size, ">= 1");
  range(a.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", a.gradient_accumulation_steps, ">= 1");
  range(a.logging_steps >= 0, "logging_steps", a.logging_steps, ">= 0");
  range(!steps_save || a.save_steps > 0, "save_steps", a.save_steps, "> 0 with save_strategy steps");
  if (a.save_total_limit) range(*a.save_total_limit >= 1, "save_total_limit", *a.save_total_limit, ">= 1");
  range(a.ddp_timeout > 0, "ddp_timeout", a.ddp_timeout, "> 0 seconds");
  if (a.ddp_bucket_cap_mb) range(*a.ddp_bucket_cap_mb > 0, "ddp_bucket_cap_mb", *a.ddp_bucket_cap_mb, "> 0");
  check(a.max_steps > 0 || a.num_train_epochs > 0, "num_train_epochs",
        "num_train_epochs is 0 and max_steps is not set: nothing to train");
  check(!a.output_dir.empty(), "output_dir", "output_dir must not be empty");
  check(a.save_safetensors, "save_safetensors",
        "save_safetensors false is refused: hftrain writes model.safetensors only (torch .bin files need Python)");
  // What this run cannot do is refused, not ignored. fp16 and tf32 need the GPU the run will
  // use (HF refuses fp16 on the CPU with torch < 2.3); asked only when they are set, since
  // looking for a GPU starts CUDA.
  const bool fp16 = a.fp16 || a.fp16_full_eval;
  check(!fp16 || (!a.use_cpu && cuda_available()), a.fp16 ? "fp16" : "fp16_full_eval",
        "fp16 mixed precision needs a CUDA device, and " + cpu_reason(a.use_cpu) +
            "; use bf16 (CPU autocast) or float32");
  check(!a.tf32.value_or(false) || (!a.use_cpu && cuda_available()), "tf32",
        "tf32 applies to CUDA matmuls, and " + cpu_reason(a.use_cpu));
  check(a.half_precision_backend == "auto" || a.half_precision_backend == "cpu_amp", "half_precision_backend",
        "half_precision_backend " + a.half_precision_backend + " is not part of hftrain; use auto");
  for (const std::string& r : a.report_to)
    check(r == "tensorboard", "report_to",
          "report_to " + r + " is not available in hftrain; available: tensorboard (log.jsonl is always written)");
  // The one place the backend is checked; dist/ takes what passes.
  if (a.ddp_backend && *a.ddp_backend == "nccl")
    check(false, "ddp_backend",
          "ddp_backend nccl needs CUDA tensors, and hftrain's data parallel runs train the ranks on the CPU; use gloo");
  else if (a.ddp_backend)
    check(*a.ddp_backend == "gloo", "ddp_backend", "ddp_backend " + *a.ddp_backend + " is not part of hftrain; use gloo");
}


}  // namespace hftrain
