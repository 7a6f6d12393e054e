#include "hftrain/config/fields.h"

#include "hftrain/config/fields_rules.h"
#include "hftrain/config/json_value.h"
#include "hftrain/core/log.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/optim/optimizer_factory.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace hftrain {

using json = nlohmann::json;

namespace {

// ---- reading one value with its type ---------------------------------------------------


template <typename T>
void read_value(const Ctx& c, const std::string& key, const json& v, T& out) {
  read_json_value(v, out, [&](const std::string& expected) { c.bad(key, v, expected); });
}

// The type HF declares, for fields that are not members (checked, then kept as given).
enum class Kind { kBool, kInt, kFloat, kStr, kOptBool, kOptInt, kOptFloat, kOptStr, kDict, kList, kAny };

void check_kind(const Ctx& c, const std::string& key, const json& v, Kind k) {
  if (v.is_null() && (k == Kind::kOptBool || k == Kind::kOptInt || k == Kind::kOptFloat || k == Kind::kOptStr ||
                      k == Kind::kDict || k == Kind::kList || k == Kind::kAny))
    return;
  switch (k) {
    case Kind::kBool: case Kind::kOptBool: { bool b; read_value(c, key, v, b); return; }
    case Kind::kInt: case Kind::kOptInt: { int64_t i; read_value(c, key, v, i); return; }
    case Kind::kFloat: case Kind::kOptFloat: { double d; read_value(c, key, v, d); return; }
    case Kind::kStr: case Kind::kOptStr: { std::string s; read_value(c, key, v, s); return; }
    case Kind::kDict: if (!v.is_object() && !v.is_string()) c.bad(key, v, "a mapping"); return;
    case Kind::kList: if (!v.is_array() && !v.is_string()) c.bad(key, v, "a list or a string"); return;
    case Kind::kAny: return;
  }
}

// ---- the table ------------------------------------------------------------------------

struct Binding {
  std::function<void(TrainingArguments&, const std::string&, const json&, const Ctx&)> read;
  std::function<json(const TrainingArguments&)> write;
};

json to_json_value(const json& v) { return v; }
template <typename T>
json to_json_value(const T& v) { return json(v); }
template <typename T>
json to_json_value(const std::optional<T>& v) { return v ? json(*v) : json(nullptr); }

template <typename T>
Binding bind_field(T TrainingArguments::*m) {
  return {[m](TrainingArguments& a, const std::string& key, const json& v, const Ctx& c) { read_value(c, key, v, a.*m); },
          [m](const TrainingArguments& a) { return to_json_value(a.*m); }};
}

// Kept as given (fsdp, deepspeed): config/sharding.cpp reads them once every field is known.
Binding bind_raw(nlohmann::json TrainingArguments::*m) {
  return {[m](TrainingArguments& a, const std::string&, const json& v, const Ctx&) { a.*m = v; },
          [m](const TrainingArguments& a) { return a.*m; }};
}

// A name HF has but hftrain lacks is told apart from a typo (HF: "<v> is not a valid <Enum>,
// please select one of [...]").
[[noreturn]] void refuse_name(const std::string& key, const json& v, const std::vector<std::string>& have,
                              const std::vector<std::string>& hf_names, const std::string& hf_enum, const Ctx& c) {
  if (!v.is_string()) c.bad(key, v, "one of " + join(have, ", "));
  const std::string s = v.get<std::string>();
  if (std::find(hf_names.begin(), hf_names.end(), s) != hf_names.end())
    fail("{} {} is not available in hftrain yet; available: {} (from {})", key, s, join(have, ", "), c.where(key));
  std::string near = nearest_name(s, hf_names);
  fail("{} is not a valid {} for {}; hftrain has: {}{} (from {})", clip(s), hf_enum, key, join(have, ", "),
       near.empty() ? "" : "; did you mean \"" + near + "\"?", c.where(key));
}

// Enums: HF's full list of names beside hftrain's.
template <typename E>
Binding bind_enum(E TrainingArguments::*m, const NameTable<E>& (*ours)(), std::vector<std::string> hf_names,
                  std::string hf_enum) {
  Binding b;
  b.read = [=](TrainingArguments& a, const std::string& key, const json& v, const Ctx& c) {
    std::vector<std::string> have;
    for (const auto& [n, e] : ours()) {
      if (v.is_string() && v.get<std::string>() == n) {
        a.*m = e;
        return;
      }
      have.push_back(n);
    }
    refuse_name(key, v, have, hf_names, hf_enum, c);
  };
  b.write = [m, ours](const TrainingArguments& a) -> json {
    for (const auto& [n, e] : ours())
      if (e == a.*m) return n;
    return nullptr;
  };
  return b;
}

// include_num_input_tokens_seen: a bool (HF 4.x) or "no" / "all" / "non_padding" (4.57 and
// later, which map true to "all"); written back as 4.48 wrote it where it can be.
Binding bind_tokens_seen() {
  Binding b;
  b.read = [](TrainingArguments& a, const std::string& key, const json& v, const Ctx& c) {
    if (v.is_boolean()) a.include_num_input_tokens_seen = v.get<bool>() ? "all" : "no";
    else if (v.is_string()) a.include_num_input_tokens_seen = v.get<std::string>();
    else c.bad(key, v, "true, false, \"all\", \"non_padding\" or \"no\"");
  };
  b.write = [](const TrainingArguments& a) -> json {
    const std::string& s = a.include_num_input_tokens_seen;
    return s == "no" ? json(false) : s == "all" ? json(true) : json(s);
  };
  return b;
}

// optim: a name from optim/'s table (an optimizer is its file and one row there).
Binding bind_optimizer(std::vector<std::string> hf_names) {
  Binding b;
  b.read = [=](TrainingArguments& a, const std::string& key, const json& v, const Ctx& c) {
    if (v.is_string() && optimizer_find(v.get<std::string>())) {
      a.optim = v.get<std::string>();
      return;
    }
    refuse_name(key, v, optimizer_names_available(), hf_names, "OptimizerNames", c);
  };
  b.write = [](const TrainingArguments& a) -> json { return a.optim; };
  return b;
}

struct FieldDef {
  FieldInfo info;
  Kind kind = Kind::kAny;
  Binding binding;                   // kUsed
  std::vector<json> also_default;    // kDefaultOnly: values equal in effect to the default
  std::vector<std::string> choices;  // HF's choices for a field that is not a member
  std::string hf_enum;               // the HF enum those choices come from
};

FieldDef used(const char* group, const char* name, json hf_default, Binding b) {
  FieldDef f;
  f.info = {name, group, FieldRole::kUsed, std::move(hf_default), ""};
  f.binding = std::move(b);
  return f;
}
FieldDef no_effect(const char* group, const char* name, Kind k, json hf_default, const char* why) {
  FieldDef f;
  f.info = {name, group, FieldRole::kNoEffect, std::move(hf_default), why};
  f.kind = k;
  return f;
}
FieldDef backend(const char* group, const char* name, Kind k, json hf_default, const char* why,
                 std::vector<json> also_default = {}) {
  FieldDef f;
  f.info = {name, group, FieldRole::kDefaultOnly, std::move(hf_default), why};
  f.kind = k;
  f.also_default = std::move(also_default);
  return f;
}
FieldDef renamed(const char* group, const char* name, Kind k, json hf_default, const char* new_name) {
  FieldDef f;
  f.info = {name, group, FieldRole::kRenamed, std::move(hf_default), new_name};
  f.kind = k;
  return f;
}
FieldDef with_choices(FieldDef f, std::vector<std::string> choices, const char* hf_enum) {
  f.choices = std::move(choices);
  f.hf_enum = hf_enum;
  return f;
}

using TA = TrainingArguments;

const std::vector<std::string> kHfSchedulers = {
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay",
    "cosine_warmup_with_min_lr", "greedy"};  // the last two: transformers 4.50 and later
const std::vector<std::string> kHfOptimizers = {
    "adamw_hf", "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused",
    "adamw_apex_fused", "adafactor", "adamw_anyprecision", "adamw_torch_4bit", "ademamix", "sgd", "adagrad",
    "adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit",
    "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit",
    "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit",
    "galore_adafactor", "galore_adamw_layerwise", "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise",
    "lomo", "adalomo", "grokadamw", "schedule_free_adamw", "schedule_free_sgd",
    // transformers 4.49 to 5.x
    "adamw_torch_8bit", "schedule_free_radam", "apollo_adamw", "apollo_adamw_layerwise", "stable_adamw"};
const std::vector<std::string> kHfIntervals = {"no", "steps", "epoch"};
const std::vector<std::string> kHfSave = {"no", "steps", "epoch", "best"};

const char* kHub = "pushing to the Hugging Face Hub is not part of hftrain; upload output_dir yourself";

std::vector<FieldDef> make_table() {
  const json null = nullptr;
  return {
      used("output", "output_dir", null, bind_field(&TA::output_dir)),
      used("output", "overwrite_output_dir", false, bind_field(&TA::overwrite_output_dir)),
      used("output", "do_train", false, bind_field(&TA::do_train)),
      used("output", "do_eval", false, bind_field(&TA::do_eval)),
      used("output", "do_predict", false, bind_field(&TA::do_predict)),
      used("eval", "eval_strategy", "no",
           bind_enum(&TA::eval_strategy, &interval_strategy_names, kHfIntervals, "IntervalStrategy")),
      used("eval", "prediction_loss_only", false, bind_field(&TA::prediction_loss_only)),
      used("batch", "per_device_train_batch_size", 8, bind_field(&TA::per_device_train_batch_size)),
      used("batch", "per_device_eval_batch_size", 8, bind_field(&TA::per_device_eval_batch_size)),
      renamed("batch", "per_gpu_train_batch_size", Kind::kOptInt, null, "per_device_train_batch_size"),
      renamed("batch", "per_gpu_eval_batch_size", Kind::kOptInt, null, "per_device_eval_batch_size"),
      used("batch", "gradient_accumulation_steps", 1, bind_field(&TA::gradient_accumulation_steps)),
      no_effect("eval", "eval_accumulation_steps", Kind::kOptInt, null, "hftrain keeps only eval losses on the host"),
      used("eval", "eval_delay", 0, bind_field(&TA::eval_delay)),
      no_effect("memory", "torch_empty_cache_steps", Kind::kOptInt, null, "hftrain does not empty the CUDA cache"),
      used("optimizer", "learning_rate", 5e-05, bind_field(&TA::learning_rate)),
      used("optimizer", "weight_decay", 0.0, bind_field(&TA::weight_decay)),
      used("optimizer", "adam_beta1", 0.9, bind_field(&TA::adam_beta1)),
      used("optimizer", "adam_beta2", 0.999, bind_field(&TA::adam_beta2)),
      used("optimizer", "adam_epsilon", 1e-08, bind_field(&TA::adam_epsilon)),
      used("stability", "max_grad_norm", 1.0, bind_field(&TA::max_grad_norm)),
      used("batch", "num_train_epochs", 3.0, bind_field(&TA::num_train_epochs)),
      used("batch", "max_steps", -1, bind_field(&TA::max_steps)),
      used("schedule", "lr_scheduler_type", "linear",
           bind_enum(&TA::lr_scheduler_type, &scheduler_type_names, kHfSchedulers, "SchedulerType")),
      used("schedule", "lr_scheduler_kwargs", json::object(), bind_field(&TA::lr_scheduler_kwargs)),
      used("schedule", "warmup_ratio", 0.0, bind_field(&TA::warmup_ratio)),
      used("schedule", "warmup_steps", 0, bind_field(&TA::warmup_steps)),
      with_choices(no_effect("logging", "log_level", Kind::kOptStr, "passive", "hftrain prints on rank 0 only"),
                   {"detail", "debug", "info", "warning", "error", "critical", "passive"}, "log level"),
      with_choices(no_effect("logging", "log_level_replica", Kind::kOptStr, "warning", "replicas do not print"),
                   {"detail", "debug", "info", "warning", "error", "critical", "passive"}, "log level"),
      no_effect("logging", "log_on_each_node", Kind::kBool, true, "only rank 0 prints"),
      used("logging", "logging_dir", null, bind_field(&TA::logging_dir)),
      used("logging", "logging_strategy", "steps",
           bind_enum(&TA::logging_strategy, &interval_strategy_names, kHfIntervals, "IntervalStrategy")),
      used("logging", "logging_first_step", false, bind_field(&TA::logging_first_step)),
      used("logging", "logging_steps", 500, bind_field(&TA::logging_steps)),
      used("stability", "logging_nan_inf_filter", true, bind_field(&TA::logging_nan_inf_filter)),
      used("save", "save_strategy", "steps", bind_enum(&TA::save_strategy, &save_strategy_names, kHfSave, "SaveStrategy")),
      used("save", "save_steps", 500, bind_field(&TA::save_steps)),
      used("save", "save_total_limit", null, bind_field(&TA::save_total_limit)),
      used("save", "save_safetensors", true, bind_field(&TA::save_safetensors)),
      no_effect("save", "save_on_each_node", Kind::kBool, false, "rank 0 writes shared files"),
      used("save", "save_only_model", false, bind_field(&TA::save_only_model)),
      used("resume", "restore_callback_states_from_checkpoint", false, bind_field(&TA::restore_callback_states_from_checkpoint)),
      renamed("device", "no_cuda", Kind::kBool, false, "use_cpu"),
      used("device", "use_cpu", false, bind_field(&TA::use_cpu)),
      backend("device", "use_mps_device", Kind::kBool, false, "Apple MPS is not a hftrain device; use use_cpu"),
      used("resume", "seed", 42, bind_field(&TA::seed)),
      used("resume", "data_seed", null, bind_field(&TA::data_seed)),
      backend("precision", "jit_mode_eval", Kind::kBool, false, "TorchScript evaluation is not part of hftrain"),
      backend("precision", "use_ipex", Kind::kBool, false, "Intel extension for PyTorch is not part of hftrain"),
      used("precision", "bf16", false, bind_field(&TA::bf16)),
      used("precision", "fp16", false, bind_field(&TA::fp16)),
      backend("precision", "fp16_opt_level", Kind::kStr, "O1", "apex AMP is not part of hftrain; fp16 uses torch autocast"),
      with_choices(used("precision", "half_precision_backend", "auto", bind_field(&TA::half_precision_backend)),
                   {"auto", "apex", "cpu_amp"}, "half precision backend"),
      used("precision", "bf16_full_eval", false, bind_field(&TA::bf16_full_eval)),
      used("precision", "fp16_full_eval", false, bind_field(&TA::fp16_full_eval)),
      used("precision", "tf32", null, bind_field(&TA::tf32)),
      no_effect("distributed", "local_rank", Kind::kInt, -1, "the rank comes from the launcher's LOCAL_RANK"),
      with_choices(used("distributed", "ddp_backend", null, bind_field(&TA::ddp_backend)),
                   {"nccl", "gloo", "mpi", "ccl", "xccl", "hccl", "cncl", "mccl"}, "ddp backend"),
      backend("device", "tpu_num_cores", Kind::kOptInt, null, "TPUs are not a hftrain device"),
      backend("device", "tpu_metrics_debug", Kind::kBool, false, "TPUs are not a hftrain device"),
      backend("debug", "debug", Kind::kAny, "", "HF's debug options (underflow_overflow, tpu_metrics_debug) are not part of hftrain", {json::array(), null}),
      used("dataloader", "dataloader_drop_last", false, bind_field(&TA::dataloader_drop_last)),
      used("eval", "eval_steps", null, bind_field(&TA::eval_steps)),
      used("dataloader", "dataloader_num_workers", 0, bind_field(&TA::dataloader_num_workers)),
      used("dataloader", "dataloader_prefetch_factor", null, bind_field(&TA::dataloader_prefetch_factor)),
      backend("model", "past_index", Kind::kInt, -1, "models with mems (Transformer-XL, XLNet) are not part of hftrain"),
      used("output", "run_name", null, bind_field(&TA::run_name)),
      used("logging", "disable_tqdm", null, bind_field(&TA::disable_tqdm)),
      no_effect("dataloader", "remove_unused_columns", Kind::kOptBool, true, "batches hold only what the model takes"),
      backend("dataloader", "label_names", Kind::kList, null,
              "hftrain's batches carry their labels under \"labels\" for every task", {json::array({"labels"})}),
      used("best", "load_best_model_at_end", false, bind_field(&TA::load_best_model_at_end)),
      used("best", "metric_for_best_model", null, bind_field(&TA::metric_for_best_model)),
      used("best", "greater_is_better", null, bind_field(&TA::greater_is_better)),
      used("resume", "ignore_data_skip", false, bind_field(&TA::ignore_data_skip)),
      used("distributed", "fsdp", "", bind_raw(&TA::fsdp)),
      no_effect("distributed", "fsdp_min_num_params", Kind::kInt, 0, "hftrain shards each transformer block as a unit"),
      used("distributed", "fsdp_config", null, bind_raw(&TA::fsdp_config)),
      no_effect("distributed", "fsdp_transformer_layer_cls_to_wrap", Kind::kOptStr, null,
                "hftrain shards each transformer block as a unit"),
      backend("distributed", "accelerator_config", Kind::kAny, null, "hftrain does not run through accelerate"),
      used("distributed", "deepspeed", null, bind_raw(&TA::deepspeed)),
      used("stability", "label_smoothing_factor", 0.0, bind_field(&TA::label_smoothing_factor)),
      used("optimizer", "optim", "adamw_torch", bind_optimizer(kHfOptimizers)),
      used("optimizer", "optim_args", null, bind_field(&TA::optim_args)),
      renamed("optimizer", "adafactor", Kind::kBool, false, "optim"),
      used("dataloader", "group_by_length", false, bind_field(&TA::group_by_length)),
      no_effect("dataloader", "length_column_name", Kind::kOptStr, "length", "used only by group_by_length"),
      used("logging", "report_to", null, bind_field(&TA::report_to)),
      no_effect("distributed", "ddp_find_unused_parameters", Kind::kOptBool, null, "every parameter gets a gradient"),
      used("distributed", "ddp_bucket_cap_mb", null, bind_field(&TA::ddp_bucket_cap_mb)),
      no_effect("distributed", "ddp_broadcast_buffers", Kind::kOptBool, null, "hftrain's models have no buffers to broadcast"),
      no_effect("dataloader", "dataloader_pin_memory", Kind::kBool, true, "batches are made on the host in order"),
      no_effect("dataloader", "dataloader_persistent_workers", Kind::kBool, false, "loader workers are threads of one process"),
      used("logging", "skip_memory_metrics", true, bind_field(&TA::skip_memory_metrics)),
      backend("eval", "use_legacy_prediction_loop", Kind::kBool, false, "hftrain has one prediction loop"),
      backend("hub", "push_to_hub", Kind::kBool, false, kHub),
      used("resume", "resume_from_checkpoint", null, Binding{
          [](TA& a, const std::string& key, const json& v, const Ctx& c) {
            if (v.is_boolean()) a.resume_from_checkpoint = v.get<bool>() ? std::optional<std::string>("true") : std::nullopt;
            else if (v.is_string()) a.resume_from_checkpoint = v.get<std::string>();
            else c.bad(key, v, "a checkpoint path or true");
          },
          [](const TA& a) { return to_json_value(a.resume_from_checkpoint); }}),
      backend("hub", "hub_model_id", Kind::kOptStr, null, kHub),
      with_choices(backend("hub", "hub_strategy", Kind::kStr, "every_save", kHub),
                   {"end", "every_save", "checkpoint", "all_checkpoints"}, "HubStrategy"),
      backend("hub", "hub_token", Kind::kOptStr, null, kHub, {"<HUB_TOKEN>"}),
      backend("hub", "hub_private_repo", Kind::kOptBool, null, kHub),
      backend("hub", "hub_always_push", Kind::kBool, false, kHub),
      used("memory", "gradient_checkpointing", false, bind_field(&TA::gradient_checkpointing)),
      used("memory", "gradient_checkpointing_kwargs", null, bind_raw(&TA::gradient_checkpointing_kwargs)),
      renamed("eval", "include_inputs_for_metrics", Kind::kBool, false, "include_for_metrics"),
      used("eval", "include_for_metrics", json::array(), bind_field(&TA::include_for_metrics)),
      no_effect("eval", "eval_do_concat_batches", Kind::kBool, true, "eval losses are always concatenated"),
      renamed("precision", "fp16_backend", Kind::kStr, "auto", "half_precision_backend"),
      renamed("eval", "evaluation_strategy", Kind::kAny, null, "eval_strategy"),
      backend("hub", "push_to_hub_model_id", Kind::kOptStr, null, kHub),
      backend("hub", "push_to_hub_organization", Kind::kOptStr, null, kHub),
      backend("hub", "push_to_hub_token", Kind::kOptStr, null, kHub, {"<PUSH_TO_HUB_TOKEN>"}),
      backend("distributed", "mp_parameters", Kind::kStr, "", "SageMaker model parallelism is not part of hftrain"),
      used("batch", "auto_find_batch_size", false, bind_field(&TA::auto_find_batch_size)),
      no_effect("resume", "full_determinism", Kind::kBool, false, "hftrain's CPU runs are deterministic already"),
      backend("compile", "torchdynamo", Kind::kOptStr, null, "torch.compile is Python-only"),
      no_effect("hpo", "ray_scope", Kind::kOptStr, "last", "hyper-parameter search is not part of hftrain"),
      used("distributed", "ddp_timeout", 1800, bind_field(&TA::ddp_timeout)),
      backend("compile", "torch_compile", Kind::kBool, false, "torch.compile is Python-only"),
      backend("compile", "torch_compile_backend", Kind::kOptStr, null, "torch.compile is Python-only"),
      backend("compile", "torch_compile_mode", Kind::kOptStr, null, "torch.compile is Python-only"),
      backend("distributed", "dispatch_batches", Kind::kOptBool, null, "hftrain does not run through accelerate"),
      backend("distributed", "split_batches", Kind::kOptBool, null, "hftrain does not run through accelerate"),
      used("logging", "include_tokens_per_second", false, bind_field(&TA::include_tokens_per_second)),
      with_choices(used("logging", "include_num_input_tokens_seen", false, bind_tokens_seen()), {"no", "all", "non_padding"},
                   "include_num_input_tokens_seen"),
      used("stability", "neftune_noise_alpha", null, bind_field(&TA::neftune_noise_alpha)),
      backend("optimizer", "optim_target_modules", Kind::kAny, null, "GaLore optimizers are not part of hftrain"),
      backend("eval", "batch_eval_metrics", Kind::kBool, false, "metrics are computed once over the eval set"),
      used("eval", "eval_on_start", false, bind_field(&TA::eval_on_start)),
      backend("compile", "use_liger_kernel", Kind::kOptBool, false, "Liger kernels are Triton (Python)"),
      no_effect("eval", "eval_use_gather_object", Kind::kOptBool, false, "eval losses are gathered as tensors"),
      used("distributed", "average_tokens_across_devices", false, bind_field(&TA::average_tokens_across_devices)),
      // Seq2SeqTrainingArguments' own fields.
      used("seq2seq", "predict_with_generate", false, bind_field(&TA::predict_with_generate)),
      used("seq2seq", "generation_max_length", null, bind_field(&TA::generation_max_length)),
      backend("seq2seq", "generation_num_beams", Kind::kOptInt, null, "beam search is not part of hftrain; it decodes greedily", {1}),
      backend("seq2seq", "generation_config", Kind::kAny, null, "generation settings come from generation_max_length"),
      no_effect("seq2seq", "sortish_sampler", Kind::kBool, false, "it sorts encoder-decoder batches by source length, which a causal LM has not"),
      // Fields of transformers 4.49 to 5.x (tests/golden/training_args/fields_4.49_to_5.15.json).
      backend("hub", "hub_revision", Kind::kOptStr, null, kHub),
      backend("compile", "liger_kernel_config", Kind::kAny, null, "Liger kernels are Triton (Python)", {json::object()}),
      backend("distributed", "tp_size", Kind::kOptInt, 0,
              "tensor parallelism is not part of hftrain; shard a data parallel run with fsdp or deepspeed", {1, null}),
      backend("distributed", "parallelism_config", Kind::kAny, null,
              "accelerate's N-D parallelism is not part of hftrain; shard a data parallel run with fsdp or deepspeed"),
      no_effect("logging", "project", Kind::kStr, "huggingface", "only the Trackio integration reads it"),
      no_effect("logging", "trackio_space_id", Kind::kOptStr, "trackio", "only the Trackio integration reads it"),
      no_effect("logging", "trackio_bucket_id", Kind::kOptStr, null, "only the Trackio integration reads it"),
      no_effect("logging", "trackio_static_space_id", Kind::kAny, null, "only the Trackio integration reads it"),
      no_effect("save", "enable_jit_checkpoint", Kind::kBool, false,
                "hftrain always saves a checkpoint on SIGTERM and SIGINT (see running.md)"),
      no_effect("model", "use_cache", Kind::kBool, false, "training and evaluation run without a KV cache"),
      no_effect("distributed", "ddp_static_graph", Kind::kOptBool, null, "the gradient buckets are fixed at the start"),
      with_choices(no_effect("dataloader", "dataloader_multiprocessing_context", Kind::kOptStr, null,
                             "loader workers are threads of one process"),
                   {"fork", "spawn", "forkserver"}, "multiprocessing context"),
      no_effect("dataloader", "dataloader_in_order", Kind::kBool, true, "batches always come in the sampler's order"),
      // transformers v5 spelling of group_by_length.
      used("dataloader", "train_sampling_strategy", "random",
           bind_enum(&TA::train_sampling_strategy, &train_sampling_names, {"random", "sequential", "group_by_length"},
                     "train sampling strategy")),
  };
}

const std::vector<FieldDef>& table() {
  static const std::vector<FieldDef> t = make_table();
  return t;
}

const FieldDef* find_field(const std::string& name) {
  for (const FieldDef& f : table())
    if (f.info.name == name) return &f;
  return nullptr;
}

bool is_default_equivalent(const FieldDef& f, const json& v) {
  if (v == f.info.hf_default) return true;
  if (v.is_number() && f.info.hf_default.is_number()) return v.get<double>() == f.info.hf_default.get<double>();
  for (const json& d : f.also_default)
    if (v == d) return true;
  // Dicts that HF's __post_init__ fills in (fsdp_config, accelerator_config): every value at
  // its neutral setting.
  if (v.is_object()) {
    static const std::map<std::string, json> kNeutral = {
        {"min_num_params", 0}, {"xla", false}, {"xla_fsdp_v2", false}, {"xla_fsdp_grad_ckpt", false},
        {"split_batches", false}, {"dispatch_batches", nullptr}, {"even_batches", true},
        {"use_seedable_sampler", true}, {"non_blocking", false}, {"gradient_accumulation_kwargs", nullptr},
        {"use_configured_state", false}};
    for (const auto& [k, x] : v.items()) {
      auto it = kNeutral.find(k);
      // dispatch_batches null means false for a map-style dataset, which hftrain's all are.
      if (k == "dispatch_batches" && x == false) continue;
      if (it == kNeutral.end() || it->second != x) return false;
    }
    return true;
  }
  return false;
}

}  // namespace

const std::vector<FieldInfo>& training_fields() {
  static const std::vector<FieldInfo> infos = [] {
    std::vector<FieldInfo> out;
    for (const FieldDef& f : table()) out.push_back(f.info);
    return out;
  }();
  return infos;
}

TrainingArguments training_args_read(const json& tree, const std::vector<std::string>& skip, const WhereFn& where,
                                     bool has_eval_dataset) {
  Ctx c{where};
  TrainingArguments a;
  HFT_CHECK(tree.is_object(), "the config must be a mapping of keys to values");
  json given = json::object();
  std::vector<std::string> names;
  for (const FieldDef& f : table()) names.push_back(f.info.name);
  // Direct names first, then old spellings, which fill in their new name.
  std::vector<std::pair<std::string, const FieldDef*>> old_names;
  for (const auto& [key, value] : tree.items()) {
    if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
    const FieldDef* f = find_field(key);
    if (!f) {
      std::vector<std::string> known = names;
      known.insert(known.end(), skip.begin(), skip.end());
      std::string near = nearest_name(key, known);
      fail("unknown key \"{}\"{} (from {})", key, near.empty() ? "" : "; did you mean \"" + near + "\"?", where(key));
    }
    if (f->info.role == FieldRole::kRenamed) old_names.emplace_back(key, f);
    else if (!value.is_null() || !given.contains(key)) given[key] = value;
  }
  for (const auto& [key, f] : old_names) {
    const json& value = tree.at(key);
    const std::string& to = f->info.note;
    check_kind(c, key, value, f->kind);
    if (value.is_null() || (!value.is_object() && value == f->info.hf_default && to != "eval_strategy")) continue;
    warn("{} is deprecated, use {} (from {})", key, to, where(key));
    if (key == "adafactor") {  // HF: adafactor=True means optim="adafactor"
      if (value.is_boolean() && value.get<bool>()) given["optim"] = "adafactor";
      continue;
    }
    const json now = key == "include_inputs_for_metrics"
                         ? (value.get<bool>() ? json::array({"inputs"}) : json::array())
                         : value;
    HFT_CHECK(!given.contains(to) || given.at(to).is_null() || given.at(to) == now,
              "both {} and its new name {} are set, to different values (from {})", key, to, where(key));
    given[to] = now;
  }
  // HF checks this before it knows whether the scheduler exists in hftrain.
  if (given.value("lr_scheduler_type", json("")) == "reduce_lr_on_plateau")
    HFT_CHECK(given.value("eval_strategy", json("no")) != "no",
              "lr_scheduler_type reduce_lr_on_plateau requires an eval strategy (from {})", where("lr_scheduler_type"));
  for (const FieldDef& f : table()) {
    const std::string& key = f.info.name;
    if (f.info.role == FieldRole::kRenamed) continue;
    const bool present = given.contains(key);
    const json v = present ? given.at(key) : f.info.hf_default;
    switch (f.info.role) {
      case FieldRole::kUsed:
        if (present && !v.is_null()) {
          f.binding.read(a, key, v, c);
          if (!f.choices.empty()) {
            const json now = f.binding.write(a);
            if (now.is_string() && std::find(f.choices.begin(), f.choices.end(), now.get<std::string>()) == f.choices.end())
              fail("{} is not a valid {}, please select one of [{}] (from {})", now.get<std::string>(), f.hf_enum,
                   join(f.choices, ", "), where(key));
          }
        }
        break;
      case FieldRole::kNoEffect:
      case FieldRole::kDefaultOnly:
        if (present) check_kind(c, key, v, f.kind);
        if (present && !f.choices.empty() && v.is_string() &&
            std::find(f.choices.begin(), f.choices.end(), v.get<std::string>()) == f.choices.end())
          fail("{} is not a valid {}, please select one of [{}] (from {})", v.get<std::string>(), f.hf_enum,
               join(f.choices, ", "), where(key));
        if (f.info.role == FieldRole::kDefaultOnly && present && !is_default_equivalent(f, v))
          fail("{}: {} is not supported: {}; only its default {} is accepted (from {})", key, clip(v.dump()), f.info.note,
               f.info.hf_default.dump(), where(key));
        a.other[key] = v;
        break;
      case FieldRole::kRenamed:
        break;
    }
  }
  post_init(a, c, has_eval_dataset);
  return a;
}

json training_args_to_json(const TrainingArguments& a) {
  json out = json::object();
  for (const FieldDef& f : table()) {
    const std::string& key = f.info.name;
    switch (f.info.role) {
      case FieldRole::kUsed: out[key] = f.binding.write(a); break;
      case FieldRole::kNoEffect:
      case FieldRole::kDefaultOnly: out[key] = a.other.value(key, f.info.hf_default); break;
      case FieldRole::kRenamed: out[key] = f.info.hf_default; break;
    }
  }
  return out;
}

}  // namespace hftrain
