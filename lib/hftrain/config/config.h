// The config: YAML/JSON file + --set overrides -> one tree -> typed, validated Config.
// Precedence: built-in defaults (the struct initialisers) < config file < command line.
#pragma once

#include "hftrain/config/fields.h"
#include "hftrain/config/training_arguments.h"
#include "hftrain/data/data_options.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/models/lora_config.h"
#include "hftrain/models/model_options.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/train/callback.h"
#include "hftrain/train/metric.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

// The config's `metrics:` names, as config.cpp reads and writes them.
const NameTable<Metric>& metric_names();

struct Config {
  TrainingArguments args;
  ModelOptions model;
  DataOptions data;
  std::vector<CallbackSpec> callbacks;
  std::vector<Metric> metrics = {Metric::kPerplexity};
  std::vector<std::string> plugins;         // shared libraries loaded for their callbacks and metrics
  std::vector<std::string> plugin_metrics;  // `metrics:` names that plugins registered
  // lr_scheduler_type and lr_scheduler_kwargs, typed once; the Trainer adds the run's warmup
  // and training steps.
  SchedulerOptions scheduler;
  // hftrain's own: a run whose weights became NaN or inf stops (exit 1) before saving them
  // over good checkpoints, naming the last good one; false saves them, as HF does.
  bool stop_on_nonfinite = true;
  // hftrain's own: which fused CPU kernels training uses (kernels/fusions.h); all by default.
  Fusions fused;
  // `peft:` LoRA: only the adapter trains; saves write PEFT's adapter files.
  std::optional<LoraConfig> peft;
};

// The raw tree with where each value came from ("run.yaml:4", "--set").
struct ConfigSource {
  nlohmann::json tree = nlohmann::json::object();
  std::map<std::string, std::string> origin;  // dotted key path -> origin
  std::string where(const std::string& path) const;
};

// Reads YAML (.yaml/.yml) or JSON (.json) into `src`, replacing keys it sets.
void config_merge_file(ConfigSource& src, const std::string& path);
// Merges a JSON tree (e.g. a checkpoint's saved config) under the origin name `name`.
void config_merge_json(ConfigSource& src, const nlohmann::json& tree, const std::string& name);
// Merges YAML text (the built-in default config) under the origin name `name`.
void config_merge_text(ConfigSource& src, const std::string& text, const std::string& name);
// `key=value` with a dotted key (model.config.n_layer=4); the value is a YAML scalar.
void config_merge_set(ConfigSource& src, const std::string& assignment);

// Typed and validated, once: every error names the key, the value and where it came from.
// Also says, in one warning line, what transformers would silently ignore (a scheduler's
// dropped kwargs), since hftrain reproduces HF's numbers.
Config config_resolve(const ConfigSource& src);

// The resolved config as a tree of hftrain's keys (for `hftrain config` and checkpoints).
nlohmann::json config_to_json(const Config& c);
// YAML text of a JSON tree (block style), for printing.
std::string json_to_yaml(const nlohmann::json& j);
// The resolved config as YAML, each value given in `src` marked with where it came from
// ("# run.yaml:4", "# --set learning_rate"); unmarked values are defaults.
std::string config_describe(const Config& c, const ConfigSource* src);

}  // namespace hftrain
