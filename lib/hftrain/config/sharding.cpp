#include "hftrain/config/sharding.h"

#include "hftrain/core/log.h"
#include "hftrain/io/json_file.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

namespace hftrain {

using json = nlohmann::json;

namespace {

// A key of another engine's config: what hftrain does with it.
struct KeyRule {
  const char* name;
  const char* refused;  // nullptr: accepted
};

bool truthy(const json& v) { return v.is_boolean() ? v.get<bool>() : !(v.is_null() || v == 0 || v == "" || v == "false"); }

// A mapping given inline, as JSON text, or as the path of a .json file (HF reads either).
json read_mapping(const json& v, const std::string& key, const Ctx& c) {
  if (v.is_object()) return v;
  if (!v.is_string()) c.bad(key, v, "a mapping, its JSON text, or the path of a .json file");
  const std::string s = v.get<std::string>();
  std::error_code ec;
  if (std::filesystem::is_regular_file(s, ec)) {
    json j = io::read_json_file(s);
    if (!j.is_object()) fail("{}: {} must hold a JSON object (from {})", key, s, c.where(key));
    return j;
  }
  try {
    json j = json::parse(s);
    if (j.is_object()) return j;
  } catch (const json::exception&) {
  }
  fail("{}: no such file {} (and it is not a JSON mapping) (from {})", key, clip(s), c.where(key));
}

void check_keys(const json& m, const std::string& what, const std::vector<KeyRule>& rules, const Ctx& c,
                const std::string& key) {
  std::vector<std::string> names;
  for (const KeyRule& r : rules) names.push_back(r.name);
  for (const auto& [k, v] : m.items()) {
    auto it = std::find_if(rules.begin(), rules.end(), [&](const KeyRule& r) { return k == r.name; });
    if (it == rules.end()) {
      const std::string near = nearest_name(k, names);
      fail("{}: unknown key \"{}\"{} (from {})", what, k, near.empty() ? "" : "; did you mean \"" + near + "\"?",
           c.where(key));
    }
    if (it->refused && truthy(v)) fail("{}.{}: {} is not supported: {} (from {})", what, k, clip(v.dump()), it->refused, c.where(key));
  }
}

int64_t from_fsdp(TrainingArguments& a, const Ctx& c) {
  std::vector<std::string> options;
  if (a.fsdp.is_boolean()) {  // HF: fsdp=True means full_shard
    if (a.fsdp.get<bool>()) options.push_back("full_shard");
  } else if (a.fsdp.is_string()) {
    const std::string s = a.fsdp.get<std::string>();
    for (size_t i = 0; i < s.size();) {
      const size_t j = std::min(s.find(' ', i), s.size());
      if (j > i) options.push_back(s.substr(i, j - i));
      i = j + 1;
    }
  } else if (a.fsdp.is_array()) {
    for (const json& o : a.fsdp) {
      if (!o.is_string()) c.bad("fsdp", a.fsdp, "a string or a list of FSDP options");
      options.push_back(o.get<std::string>());
    }
  } else if (!a.fsdp.is_null()) {
    c.bad("fsdp", a.fsdp, "a string or a list of FSDP options");
  }
  int64_t stage = -1;
  bool offload = false;
  for (const std::string& o : options) {
    if (o == "full_shard") stage = 3;
    else if (o == "shard_grad_op") stage = 2;
    else if (o == "no_shard") stage = 0;
    else if (o == "offload") offload = true;  // the ranks train on the CPU: state is in host memory already
    else if (o == "auto_wrap") continue;      // hftrain's unit is always the transformer block
    else if (o == "hybrid_shard" || o == "hybrid_shard_zero2")
      fail("fsdp {} is not supported: hftrain shards over every rank (full_shard or shard_grad_op) (from {})", o,
           c.where("fsdp"));
    else
      fail("{} is not a valid FSDPOption, please select one of [full_shard, shard_grad_op, no_shard, hybrid_shard, "
           "hybrid_shard_zero2, offload, auto_wrap] (from {})",
           clip(o), c.where("fsdp"));
  }
  if (offload && stage < 2)
    fail("`--fsdp offload` can't work on its own. It needs to be added to `--fsdp full_shard` or `--fsdp shard_grad_op`. "
         "For example, `--fsdp \"full_shard offload\"`. (from {})",
         c.where("fsdp"));
  json config = a.fsdp_config.is_null() ? json::object() : read_mapping(a.fsdp_config, "fsdp_config", c);
  json plain = json::object();  // HF drops the "fsdp_" prefix of each key
  for (const auto& [k, v] : config.items()) plain[k.rfind("fsdp_", 0) == 0 ? k.substr(5) : k] = v;
  const char* xla = "XLA is not a hftrain device";
  check_keys(plain, "fsdp_config",
             {{"min_num_params", nullptr}, {"transformer_layer_cls_to_wrap", nullptr}, {"backward_prefetch", nullptr},
              {"forward_prefetch", nullptr}, {"limit_all_gathers", nullptr}, {"use_orig_params", nullptr},
              {"sync_module_states", nullptr}, {"cpu_ram_efficient_loading", nullptr},
              {"activation_checkpointing", nullptr}, {"auto_wrap_policy", nullptr}, {"state_dict_type", nullptr},
              {"sharding_strategy", nullptr}, {"offload_params", nullptr}, {"version", nullptr}, {"xla", xla},
              {"xla_fsdp_settings", xla}, {"xla_fsdp_v2", xla}, {"xla_fsdp_grad_ckpt", xla}},
             c, "fsdp_config");
  if (plain.contains("state_dict_type") && plain["state_dict_type"] != "FULL_STATE_DICT")
    fail("fsdp_config.state_dict_type {} is not supported: hftrain writes the full state dict (model.safetensors "
         "whole, optimizer.pt consolidated), which resumes on any world size (from {})",
         clip(plain["state_dict_type"].dump()), c.where("fsdp_config"));
  if (plain.contains("version") && plain["version"] != 1 && plain["version"] != 2)
    c.bad("fsdp_config", plain["version"], "FSDP version 1 or 2");
  if (truthy(plain.value("activation_checkpointing", json(false)))) {
    if (a.gradient_checkpointing)
      fail("The activation_checkpointing in FSDP config and the gradient_checkpointing in training arg can't be set "
           "to True simultaneously. Please use FSDP's activation_checkpointing logic when using FSDP. (from {})",
           c.where("fsdp_config"));
    a.gradient_checkpointing = true;  // FSDP checkpoints each wrapped block: the same recompute
  }
  if (stage < 0 && !options.empty()) stage = 0;
  return stage;
}

// HF fills "auto" from the arguments and refuses a number that differs from them.
void match(const json& ds, const char* ds_key, double hf_value, const char* hf_key, const Ctx& c) {
  if (!ds.contains(ds_key) || ds[ds_key] == "auto" || ds[ds_key].is_null()) return;
  if (!ds[ds_key].is_number()) c.bad("deepspeed", ds[ds_key], std::string(ds_key) + " as a number or \"auto\"");
  if (ds[ds_key].get<double>() != hf_value)
    fail("deepspeed: {}={} but {} is {}: set it to \"auto\" or make them equal (from {})", ds_key, ds[ds_key].dump(),
         hf_key, hf_value, c.where("deepspeed"));
}

void match_enabled(const json& ds, const char* section, bool hf_value, const Ctx& c) {
  if (!ds.contains(section)) return;
  const json& s = ds[section];
  if (!s.is_object()) c.bad("deepspeed", s, std::string(section) + " as a mapping");
  const json e = s.value("enabled", json("auto"));
  if (e == "auto") return;
  if (!e.is_boolean() || e.get<bool>() != hf_value)
    fail("deepspeed: {}.enabled={} but {} is {}: set it to \"auto\" or make them equal (from {})", section, e.dump(),
         section, hf_value ? "true" : "false", c.where("deepspeed"));
}

int64_t from_deepspeed(const TrainingArguments& a, const Ctx& c) {
  const json ds = read_mapping(a.deepspeed, "deepspeed", c);
  const char* nvme = "NVMe offload is not part of hftrain";
  check_keys(ds, "deepspeed",
             {{"train_batch_size", nullptr}, {"train_micro_batch_size_per_gpu", nullptr},
              {"gradient_accumulation_steps", nullptr}, {"gradient_clipping", nullptr}, {"zero_optimization", nullptr},
              {"optimizer", nullptr}, {"scheduler", nullptr}, {"fp16", nullptr}, {"bf16", nullptr},
              {"amp", "apex AMP is not part of hftrain; use fp16 or bf16"}, {"steps_per_print", nullptr},
              {"wall_clock_breakdown", nullptr}, {"zero_allow_untested_optimizer", nullptr},
              {"zero_force_ds_cpu_optimizer", nullptr}, {"communication_data_type", nullptr},
              {"prescale_gradients", nullptr}, {"gradient_predivide_factor", nullptr}, {"dump_state", nullptr},
              {"flops_profiler", nullptr}, {"tensorboard", nullptr}, {"wandb", nullptr}, {"csv_monitor", nullptr},
              {"comms_logger", nullptr}, {"memory_breakdown", nullptr}, {"activation_checkpointing", nullptr},
              {"aio", nullptr}, {"seed", nullptr}, {"data_types", nullptr}},
             c, "deepspeed");
  const json zero = ds.value("zero_optimization", json::object());
  if (!zero.is_object()) c.bad("deepspeed", zero, "zero_optimization as a mapping");
  check_keys(zero, "deepspeed zero_optimization",
             {{"stage", nullptr}, {"offload_optimizer", nullptr}, {"offload_param", nullptr}, {"cpu_offload", nullptr},
              {"overlap_comm", nullptr}, {"contiguous_gradients", nullptr}, {"reduce_bucket_size", nullptr},
              {"allgather_bucket_size", nullptr}, {"allgather_partitions", nullptr}, {"reduce_scatter", nullptr},
              {"round_robin_gradients", nullptr}, {"sub_group_size", nullptr}, {"stage3_prefetch_bucket_size", nullptr},
              {"stage3_param_persistence_threshold", nullptr}, {"stage3_max_live_parameters", nullptr},
              {"stage3_max_reuse_distance", nullptr}, {"stage3_gather_16bit_weights_on_model_save", nullptr},
              {"stage3_gather_fp16_weights_on_model_save", nullptr}, {"ignore_unused_parameters", nullptr},
              {"load_from_fp32_weights", nullptr}, {"elastic_checkpoint", nullptr}, {"memory_efficient_linear", nullptr},
              {"zero_hpz_partition_size", "hierarchical partitioning (ZeRO++) is not part of hftrain"},
              {"zero_quantized_weights", "quantized collectives (ZeRO++) are not part of hftrain"},
              {"zero_quantized_gradients", "quantized collectives (ZeRO++) are not part of hftrain"},
              {"mics_shard_size", "MiCS sharding is not part of hftrain"}},
             c, "deepspeed");
  for (const char* off : {"offload_optimizer", "offload_param"}) {
    if (!zero.contains(off)) continue;
    const json& o = zero[off];
    const json device = o.is_object() ? o.value("device", json("none")) : json("none");
    if (device == "nvme") fail("deepspeed: zero_optimization.{}.device nvme is not supported: {} (from {})", off, nvme, c.where("deepspeed"));
    if (device != "none" && device != "cpu")  // cpu: the ranks train on the CPU, the state is there already
      c.bad("deepspeed", device, std::string(off) + ".device none, cpu or nvme");
  }
  const json stage = zero.value("stage", json(0));
  if (!stage.is_number_integer() || stage.get<int64_t>() < 0 || stage.get<int64_t>() > 3)
    c.bad("deepspeed", stage, "zero_optimization.stage 0, 1, 2 or 3");
  const char* world = std::getenv("WORLD_SIZE");
  const double ranks = world ? std::atof(world) : 1;
  match(ds, "train_micro_batch_size_per_gpu", static_cast<double>(a.per_device_train_batch_size),
        "per_device_train_batch_size", c);
  match(ds, "gradient_accumulation_steps", static_cast<double>(a.gradient_accumulation_steps),
        "gradient_accumulation_steps", c);
  match(ds, "train_batch_size",
        static_cast<double>(a.per_device_train_batch_size * a.gradient_accumulation_steps) * std::max(ranks, 1.0),
        "per_device_train_batch_size x gradient_accumulation_steps x world size", c);
  match(ds, "gradient_clipping", a.max_grad_norm, "max_grad_norm", c);
  match_enabled(ds, "fp16", a.fp16, c);
  match_enabled(ds, "bf16", a.bf16, c);
  if (ds.contains("optimizer")) {  // DeepSpeed's Adam/AdamW with HF's values: the same as optim adamw_torch
    const json& o = ds["optimizer"];
    const json type = o.is_object() ? o.value("type", json()) : json();
    if (type != "AdamW" && type != "Adam" && type != "adamw" && type != "adam")
      fail("deepspeed: optimizer {} is not supported: hftrain's optimizers are torch's; remove the optimizer section "
           "and set optim (from {})",
           clip(type.dump()), c.where("deepspeed"));
    if (a.optim != "adamw_torch")
      fail("deepspeed: the optimizer section asks for AdamW and optim is {}: remove one (from {})", a.optim,
           c.where("deepspeed"));
    const json params = o.value("params", json::object());
    match(params, "lr", a.learning_rate, "learning_rate", c);
    match(params, "eps", a.adam_epsilon, "adam_epsilon", c);
    match(params, "weight_decay", a.weight_decay, "weight_decay", c);
    if (params.contains("betas") && params["betas"] != "auto" &&
        params["betas"] != json::array({a.adam_beta1, a.adam_beta2}))
      fail("deepspeed: optimizer betas={} but adam_beta1, adam_beta2 are {}, {}: set it to \"auto\" or make them "
           "equal (from {})",
           params["betas"].dump(), a.adam_beta1, a.adam_beta2, c.where("deepspeed"));
  }
  if (ds.contains("scheduler"))
    fail("deepspeed: the scheduler section is not supported: hftrain schedules with lr_scheduler_type (HF's "
         "schedulers); remove it (from {})",
         c.where("deepspeed"));
  return stage.get<int64_t>();
}

}  // namespace

void resolve_sharding(TrainingArguments& a, const Ctx& c) {
  const bool fsdp = !(a.fsdp.is_null() || a.fsdp == "" || a.fsdp == false || a.fsdp == json::array());
  const bool ds = !a.deepspeed.is_null();
  if (!fsdp && !ds) {
    // HF's own dumps carry fsdp_config filled with neutral values (min_num_params 0, xla false).
    const bool set = a.fsdp_config.is_object() &&
                     std::any_of(a.fsdp_config.begin(), a.fsdp_config.end(), [](const json& v) { return truthy(v); });
    if (set || a.fsdp_config.is_string())
      warn("fsdp_config is set but fsdp is not: it has no effect (from {})", c.where("fsdp_config"));
    a.zero_stage = 0;
    return;
  }
  if (fsdp && ds) fail("fsdp and deepspeed are both set: choose one (from {})", c.where("deepspeed"));
  a.zero_stage = fsdp ? std::max<int64_t>(from_fsdp(a, c), 0) : from_deepspeed(a, c);
  // A rank's slice of a weight matrix does not hold its rows and columns.
  if (a.zero_stage > 0 && a.optim == "adafactor")
    fail("optim adafactor factors each weight matrix's second moment over its rows and columns, which a rank's shard "
         "does not hold: sharded data parallel ({}) needs an elementwise optimizer (adamw_torch, sgd, adagrad, "
         "rmsprop) (from {})",
         fsdp ? "fsdp" : "deepspeed", c.where("optim"));
}

}  // namespace hftrain
