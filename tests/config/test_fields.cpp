// The whole TrainingArguments surface against transformers 4.48.3's own description of it
// (golden/training_args/): names, defaults, types, HF's JSON, and HF's refusals.
#include "hftrain/config/config.h"
#include "hftrain/config/fields.h"
#include "hftrain/core/error.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <set>

using hftrain::test::golden;
using hftrain::test::read_json;
using hftrain::test::TempDir;
using json = nlohmann::json;

namespace {

hftrain::Config resolve(const json& tree) {
  hftrain::ConfigSource src;
  hftrain::config_merge_json(src, tree, "test.json");
  return hftrain::config_resolve(src);
}

std::string refusal(const json& tree) {
  try {
    resolve(tree);
  } catch (const hftrain::Error& e) {
    CHECK(e.kind() == hftrain::Error::kUser);
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
    return e.what();
  }
  return "";
}

bool same_value(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

// A value of the wrong type for an HF annotation, or null when any value could be right.
json wrong_value(std::string type) {
  // transformers 5 writes Optional[X] as "X | None"
  if (type.size() > 7 && type.compare(type.size() - 7, 7, " | None") == 0) type = type.substr(0, type.size() - 7);
  if (type.rfind("Optional[", 0) == 0 && type.back() == ']') type = type.substr(9, type.size() - 10);
  if (type == "bool") return "yes please";
  if (type == "int" || type == "float") return "many";
  if (type == "str") return 12;
  return nullptr;
}

// HF's message up to its first line break or list of choices, with enum reprs as plain names.
std::string hf_phrase(std::string m) {
  m = m.substr(0, m.find('\n'));
  m = m.substr(0, m.find(", please select"));
  for (const char* e : {"IntervalStrategy.", "SaveStrategy."}) {
    size_t at;
    while ((at = m.find(e)) != std::string::npos) {
      size_t end = at + std::strlen(e);
      size_t stop = m.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", end);
      std::string name = m.substr(end, stop - end);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(ch));
      m.replace(at, stop - at, name);
    }
  }
  while (!m.empty() && (m.back() == '.' || m.back() == ' ')) m.pop_back();
  return m;
}

}  // namespace

TEST_CASE("every HF TrainingArguments field is known, with HF's default", "[unit][config]") {
  json hf = read_json(golden("training_args/fields_4.48.3.json"));
  const json ours = hftrain::training_args_to_json(resolve(json::object()).args);
  // Filled in by __post_init__, as in HF (resolved.json): compared elsewhere.
  const std::set<std::string> post_init = {"output_dir", "run_name", "logging_dir", "disable_tqdm", "report_to"};
  int fields = 0;
  for (const json& f : hf["fields"]) {
    const std::string name = f["name"];
    if (f.value("init", true) == false) continue;  // _n_gpu: not an argument
    INFO("field " << name << " (" << f["type"].get<std::string>() << ")");
    REQUIRE(ours.contains(name));
    if (!post_init.count(name)) CHECK(same_value(ours[name], f["default"]));
    ++fields;
  }
  CHECK(fields == 131);
}

TEST_CASE("each field accepts HF's default and refuses a value of the wrong type", "[unit][config]") {
  json hf = read_json(golden("training_args/fields_4.48.3.json"));
  for (const json& f : hf["fields"]) {
    const std::string name = f["name"];
    if (f.value("init", true) == false || name == "output_dir") continue;
    INFO("field " << name);
    CHECK(refusal({{name, f["default"]}}).empty());
    json wrong = wrong_value(f["type"]);
    if (!wrong.is_null()) CHECK_THAT(refusal({{name, wrong}}), Catch::Contains(name));
  }
}

TEST_CASE("the JSON that HF's to_json_string() wrote loads as a config and resolves to the same values",
          "[unit][config]") {
  json hf = read_json(golden("training_args/example_to_json.json"));
  TempDir dir("to-json");
  const std::string path = dir.str() + "/args.json";
  std::ofstream(path) << hf.dump(2);
  hftrain::ConfigSource src;
  hftrain::config_merge_file(src, path);
  hftrain::Config c = hftrain::config_resolve(src);
  json ours = hftrain::training_args_to_json(c.args);
  for (const auto& [k, v] : hf.items()) {
    INFO("field " << k);
    REQUIRE(ours.contains(k));
    CHECK(same_value(ours[k], v));
  }
  // And the values hftrain acts on, from resolved.json's properties.
  json props = read_json(golden("training_args/resolved.json"))["properties"];
  CHECK(c.args.train_batch_size() == props["train_batch_size"].get<int64_t>());
  CHECK(c.args.eval_batch_size() == props["eval_batch_size"].get<int64_t>());
  CHECK(c.args.get_warmup_steps(1000) == props["get_warmup_steps(1000)"].get<int64_t>());
  CHECK(c.args.get_warmup_steps(37) == props["get_warmup_steps(37)"].get<int64_t>());
  CHECK(c.args.greater_is_better == false);
  CHECK(c.args.do_eval);
}

TEST_CASE("every field of transformers 4.49 to 5.15 is known, and each release's defaults load", "[unit][config]") {
  const json hf = read_json(golden("training_args/fields_4.49_to_5.15.json"));
  const json ours = hftrain::training_args_to_json(resolve(json::object()).args);
  REQUIRE(hf["releases"].size() >= 25);
  for (const auto& [name, variants] : hf["fields"].items()) {
    INFO("field " << name);
    CHECK(ours.contains(name));
    for (const json& v : variants) {
      INFO("default " << v["default"].dump() << " in " << v["in"].dump());
      if (name != "output_dir") CHECK(refusal({{name, v["default"]}}).empty());
      const json wrong = wrong_value(v["type"]);
      if (!wrong.is_null() && name != "output_dir") CHECK_THAT(refusal({{name, wrong}}), Catch::Contains(name));
    }
  }
  // Each release's whole set of defaults at once, as its TrainingArguments() has them.
  for (const json& release : hf["releases"]) {
    json all = json::object();
    for (const auto& [name, variants] : hf["fields"].items())
      for (const json& v : variants)
        for (const json& in : v["in"])
          if (in == release && name != "output_dir") all[name] = v["default"];
    INFO("release " << release.get<std::string>());
    CHECK(refusal(all).empty());
  }
}

TEST_CASE("to_json_string() of transformers 4.57 and 5.15 loads; the values given resolve as given", "[unit][config]") {
  for (const char* version : {"4.57.6", "5.15.0"}) {
    for (const std::string file : {std::string("to_json_") + version, std::string("to_json_") + version + "_example"}) {
      INFO(file);
      const json hf = read_json(golden("training_args/" + file + ".json"));
      CHECK(refusal(hf).empty());
      const hftrain::Config c = resolve(hf);
      CHECK(c.args.output_dir == "out");
      CHECK(c.args.include_num_input_tokens_seen == "no");
      if (file.find("example") == std::string::npos) continue;
      // TrainingArguments(output_dir="out", learning_rate=3e-4, num_train_epochs=2,
      // per_device_train_batch_size=16, eval_strategy="steps", eval_steps=50, save_steps=100, use_cpu=True)
      CHECK(c.args.learning_rate == 3e-4);
      CHECK(c.args.num_train_epochs == 2);
      CHECK(c.args.per_device_train_batch_size == 16);
      CHECK(c.args.eval_strategy == hftrain::IntervalStrategy::kSteps);
      CHECK(c.args.eval_steps == 50);
      CHECK(c.args.save_steps == 100);
      CHECK(c.args.use_cpu);
      CHECK(c.args.do_eval);
    }
  }
  CHECK(resolve({{"include_num_input_tokens_seen", "non_padding"}}).args.include_num_input_tokens_seen == "non_padding");
  CHECK(resolve({{"include_num_input_tokens_seen", true}}).args.include_num_input_tokens_seen == "all");
  CHECK_THAT(refusal({{"include_num_input_tokens_seen", "some"}}),
             Catch::Contains("some is not a valid include_num_input_tokens_seen, please select one of [no, all, non_padding]"));
  CHECK(refusal({{"debug", nullptr}, {"accelerator_config", {{"dispatch_batches", false}}}}).empty());
  CHECK_THAT(refusal({{"hub_revision", "main"}}), Catch::Contains("hub_revision") && Catch::Contains("Hub"));
  CHECK_THAT(refusal({{"tp_size", 2}}), Catch::Contains("tensor parallelism is not part of hftrain"));
}

TEST_CASE("every combination HF refuses is refused with HF's words", "[unit][config]") {
  json rows = read_json(golden("training_args/invalid_examples.json"));
  REQUIRE(rows.size() >= 15);
  for (const json& row : rows) {
    INFO(row["what"].get<std::string>() << ": " << row["args"].dump());
    std::string msg = refusal(row["args"]);
    REQUIRE(!msg.empty());
    CHECK_THAT(msg, Catch::Contains(hf_phrase(row["message"])));
  }
}

TEST_CASE("combinations HF accepts but hftrain refuses are refused on purpose", "[unit][config]") {
  // Each row of accepted_by_hf.json: refused (stricter than HF, with the reason) or accepted.
  const std::map<std::string, std::string> refused = {
      {"fp16 on CPU", "fp16 mixed precision needs a CUDA device"},
      {"fp16_full_eval on CPU", "fp16 mixed precision needs a CUDA device"},
      {"unknown half_precision_backend", "is not a valid half precision backend"},
      {"torch_compile_mode unknown", "torch.compile is Python-only"},
      {"report_to an unknown integration", "report_to not_a_logger is not available"},
      {"gradient_accumulation_steps 0", "gradient_accumulation_steps must be >= 1"},
      {"negative learning_rate", "learning_rate must be >= 0"},
      {"save_total_limit 0", "save_total_limit must be >= 1"},
  };
  json rows = read_json(golden("training_args/accepted_by_hf.json"))["accepted"];
  for (const json& row : rows) {
    const std::string what = row["what"];
    INFO(what << ": " << row["args"].dump());
    std::string msg = refusal(row["args"]);
    auto it = refused.find(what);
    if (it == refused.end()) CHECK(msg.empty());
    else CHECK_THAT(msg, Catch::Contains(it->second));
  }
}

TEST_CASE("backend fields are accepted at their default and refused otherwise with a reason", "[unit][config]") {
  CHECK(refusal({{"deepspeed", nullptr}, {"push_to_hub", false}, {"fsdp", ""}}).empty());
  CHECK_THAT(refusal({{"deepspeed", "ds_config.json"}}), Catch::Contains("deepspeed: no such file ds_config.json"));
  CHECK_THAT(refusal({{"push_to_hub", true}}), Catch::Contains("upload output_dir yourself"));
  CHECK_THAT(refusal({{"optim", "lion_8bit"}}), Catch::Contains("optim lion_8bit is not available in hftrain yet"));
}

// HF's spellings of sharding (FSDPOption, a DeepSpeed ZeRO config) map to hftrain's stages;
// what hftrain cannot do is refused with the reason, and DeepSpeed's numbers must agree with
// the arguments as HfTrainerDeepSpeedConfig requires.
TEST_CASE("fsdp and deepspeed map to ZeRO stages; what cannot apply is refused with the reason", "[unit][config]") {
  CHECK(resolve(json::object()).args.zero_stage == 0);
  CHECK(resolve({{"fsdp", "full_shard auto_wrap"}}).args.zero_stage == 3);
  CHECK(resolve({{"fsdp", json::array({"shard_grad_op"})}}).args.zero_stage == 2);
  CHECK(resolve({{"fsdp", true}}).args.zero_stage == 3);
  CHECK(resolve({{"fsdp", "no_shard"}}).args.zero_stage == 0);
  CHECK(resolve({{"fsdp", "full_shard offload"}}).args.zero_stage == 3);  // the CPU ranks hold state in host memory
  hftrain::Config ac = resolve({{"fsdp", "full_shard"},
                                {"fsdp_config", {{"fsdp_activation_checkpointing", true}, {"backward_prefetch", "backward_pre"},
                                                 {"transformer_layer_cls_to_wrap", json::array({"GPT2Block"})}}}});
  CHECK(ac.args.gradient_checkpointing);
  for (int stage : {0, 1, 2, 3}) {
    json ds = {{"zero_optimization", {{"stage", stage}, {"overlap_comm", true}, {"offload_optimizer", {{"device", "cpu"}}}}},
               {"train_micro_batch_size_per_gpu", "auto"}, {"gradient_clipping", "auto"}, {"bf16", {{"enabled", "auto"}}},
               {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", "auto"}, {"betas", "auto"}}}}}};
    CHECK(resolve({{"deepspeed", ds}}).args.zero_stage == stage);
    CHECK(resolve({{"deepspeed", ds.dump()}}).args.zero_stage == stage);  // as JSON text
  }
  CHECK_THAT(refusal({{"fsdp", "hybrid_shard"}}), Catch::Contains("hftrain shards over every rank"));
  CHECK_THAT(refusal({{"fsdp", "offload"}}), Catch::Contains("can't work on its own"));
  CHECK_THAT(refusal({{"fsdp", "full_shrad"}}), Catch::Contains("full_shrad is not a valid FSDPOption"));
  CHECK_THAT(refusal({{"fsdp", "full_shard"}, {"fsdp_config", {{"state_dict_type", "SHARDED_STATE_DICT"}}}}),
             Catch::Contains("hftrain writes the full state dict"));
  CHECK_THAT(refusal({{"fsdp", "full_shard"}, {"fsdp_config", {{"xla", true}}}}), Catch::Contains("XLA is not a hftrain device"));
  CHECK_THAT(refusal({{"fsdp", "full_shard"}, {"fsdp_config", {{"min_num_param", 1}}}}),
             Catch::Contains("did you mean \"min_num_params\""));
  CHECK_THAT(refusal({{"fsdp", "full_shard"}, {"gradient_checkpointing", true}, {"fsdp_config", {{"activation_checkpointing", true}}}}),
             Catch::Contains("can't be set to True simultaneously"));
  CHECK_THAT(refusal({{"fsdp", "full_shard"}, {"deepspeed", {{"zero_optimization", {{"stage", 2}}}}}}),
             Catch::Contains("fsdp and deepspeed are both set"));
  CHECK_THAT(refusal({{"deepspeed", {{"zero_optimization", {{"stage", 3}, {"offload_param", {{"device", "nvme"}}}}}}}}),
             Catch::Contains("NVMe offload is not part of hftrain"));
  CHECK_THAT(refusal({{"deepspeed", {{"zero_optimization", {{"stage", 4}}}}}}), Catch::Contains("stage 0, 1, 2 or 3"));
  CHECK_THAT(refusal({{"per_device_train_batch_size", 8}, {"deepspeed", {{"train_micro_batch_size_per_gpu", 4}}}}),
             Catch::Contains("train_micro_batch_size_per_gpu=4 but per_device_train_batch_size is 8"));
  CHECK_THAT(refusal({{"deepspeed", {{"gradient_clipping", 0.5}}}}), Catch::Contains("gradient_clipping=0.5 but max_grad_norm is 1"));
  CHECK_THAT(refusal({{"deepspeed", {{"bf16", {{"enabled", true}}}}}}), Catch::Contains("bf16.enabled=true but bf16 is false"));
  CHECK_THAT(refusal({{"deepspeed", {{"optimizer", {{"type", "Lamb"}}}}}}), Catch::Contains("optimizer \"Lamb\" is not supported"));
  CHECK_THAT(refusal({{"deepspeed", {{"scheduler", {{"type", "WarmupLR"}}}}}}), Catch::Contains("lr_scheduler_type"));
  CHECK_THAT(refusal({{"deepspeed", {{"zero_optimisation", {{"stage", 2}}}}}}), Catch::Contains("did you mean \"zero_optimization\""));
  CHECK_THAT(refusal({{"optim", "adafactor"}, {"fsdp", "shard_grad_op"}}), Catch::Contains("needs an elementwise optimizer"));
}

TEST_CASE("old spellings work as the new names", "[unit][config]") {
  hftrain::Config c = resolve({{"evaluation_strategy", "steps"}, {"no_cuda", true}, {"per_gpu_train_batch_size", 4}});
  CHECK(c.args.eval_strategy == hftrain::IntervalStrategy::kSteps);
  CHECK(c.args.use_cpu);
  CHECK(c.args.per_device_train_batch_size == 4);
  CHECK_THAT(refusal({{"evaluation_strategy", "steps"}, {"eval_strategy", "epoch"}}),
             Catch::Contains("both evaluation_strategy and its new name eval_strategy"));
}

TEST_CASE("float steps below 1 are ratios, eval_steps falls back to logging_steps, a float warmup_steps is a ratio",
          "[unit][config]") {
  hftrain::Config c = resolve({{"eval_strategy", "steps"}, {"logging_steps", 0.1}, {"warmup_steps", 0.25}});
  CHECK(c.args.eval_steps == 0.1);
  CHECK(c.args.get_warmup_steps(40) == 10);
  hftrain::Config load_best = resolve({{"load_best_model_at_end", true}, {"eval_strategy", "steps"},
                                       {"eval_steps", 10}, {"save_steps", 20}});
  CHECK(load_best.args.metric_for_best_model == "loss");
  CHECK(load_best.args.greater_is_better == false);
  CHECK(resolve({{"metric_for_best_model", "accuracy"}}).args.greater_is_better == true);
}

TEST_CASE("optim_args are parsed as HF splits them and checked against the optimizer's options", "[unit][config]") {
  hftrain::Config c = resolve({{"optim", "sgd"}, {"optim_args", "momentum=0.9, nesterov=True"}});
  CHECK(c.args.optim == "sgd");
  CHECK(c.args.optim_kwargs == json{{"momentum", 0.9}, {"nesterov", true}});
  CHECK_THAT(refusal({{"optim", "sgd"}, {"optim_args", "momentun=0.9"}}), Catch::Contains("did you mean \"momentum\""));
  CHECK_THAT(refusal({{"optim_args", "eps=1e-6"}}), Catch::Contains("optim_args has no meaning for optim adamw_torch"));
  // Typed and range-checked as the config is read, with torch's own messages.
  CHECK_THAT(refusal({{"optim", "sgd"}, {"optim_args", "momentum=fast"}}),
             Catch::Contains("optim_args: momentum must be a number, got \"fast\""));
  CHECK_THAT(refusal({{"optim", "sgd"}, {"optim_args", "momentum=-1"}}), Catch::Contains("Invalid momentum value: -1"));
  CHECK(resolve({{"adafactor", true}}).args.optim == "adafactor");  // HF's old flag
  CHECK(resolve({{"lr_scheduler_type", "reduce_lr_on_plateau"}, {"eval_strategy", "steps"}}).args.metric_for_best_model ==
        "loss");
}

TEST_CASE("YAML errors name the file and the line", "[unit][config]") {
  auto yaml_error = [](const std::string& text) {
    hftrain::ConfigSource src;
    try {
      hftrain::config_merge_text(src, text, "run.yaml");
      hftrain::config_resolve(src);
    } catch (const hftrain::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(yaml_error("learning_rate: 1\n  seed: 3\n"), Catch::Contains("run.yaml:"));
  CHECK_THAT(yaml_error("seed: 1\nmax_steps: 4\nseed: 2\n"), Catch::Contains("run.yaml:3: duplicate key \"seed\""));
  CHECK_THAT(yaml_error("seed: 1\nlearning_rate: fast\n"),
             Catch::Contains("\"learning_rate\" must be a number, got \"fast\" (from run.yaml:2)"));
}
