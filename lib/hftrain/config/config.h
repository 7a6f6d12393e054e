// The config: YAML/JSON file + --set overrides -> one tree -> typed, validated Config.
// Precedence: built-in defaults (the struct initialisers) < config file < command line.
#pragma once

#include "hftrain/config/fields.h"
#include "hftrain/config/training_arguments.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

enum class DatasetFormat { kGenerated, kText, kJsonl, kCsv, kTsv, kTokens };
enum class TokenDtype { kUint8, kUint16, kUint32 };
enum class SampleBy { kLine, kParagraph, kDocument };  // HF datasets' text loader

struct DatasetOptions {
  DatasetFormat format = DatasetFormat::kGenerated;
  // text/jsonl/csv/tsv: a file, a directory (its files, sorted) or a glob; tokens: a file.
  std::string path;
  std::string text_field = "text";        // jsonl/csv/tsv: the field or column of the text
  std::string label_field = "label";      // jsonl/csv/tsv, sequence classification: the class
  // jsonl/csv/tsv: a prompt before text_field's response, left out of the loss (labels -100),
  // as TRL's prompt-completion rows; empty: none.
  std::string prompt_field;
  SampleBy sample_by = SampleBy::kLine;   // text: one example per line, paragraph or file
  bool keep_linebreaks = true;            // text by line: each line keeps its "\n" (run_clm)
  int64_t num_bytes = 400000;  // generated: size of the generated text
  int64_t seed = 0;            // generated: the text generator's seed
  // tokens: little-endian ids, memory-mapped; `offset` and `num_tokens` (-1: to the end)
  // select a range, counted in tokens.
  TokenDtype dtype = TokenDtype::kUint16;
  int64_t offset = 0;
  int64_t num_tokens = -1;
};

struct DataOptions {
  std::string tokenizer = "byte";
  int64_t block_size = 128;
  // Share of the train data held out for evaluation when there is no `eval` dataset.
  double validation_split_percentage = 5;
  // Tokenized datasets are cached under cache_dir (default $HFTRAIN_CACHE, else
  // $XDG_CACHE_HOME/hftrain, else ~/.cache/hftrain), keyed by the files and the tokenizer.
  std::string cache_dir;
  bool overwrite_cache = false;
  int64_t preprocessing_num_workers = 0;  // tokenizer threads; 0: one per core
  // true: concatenate and cut into block_size windows (run_clm); false: each example its own
  // sequence, truncated to block_size and padded per batch (run_mlm's line_by_line).
  bool group_texts = true;
  bool pad_to_max_length = false;  // group_texts false: pad every batch to block_size
  int64_t pad_to_multiple_of = 0;  // group_texts false: round the padded length up
  double mlm_probability = 0.15;   // masked_lm: the share of tokens chosen for prediction
  DatasetOptions train;
  std::optional<DatasetOptions> eval;
};

enum class ModelTaskName { kDefault, kCausalLM, kSequenceClassification, kTokenClassification, kMaskedLM };

struct ModelOptions {
  std::string type = "gpt2";
  // The head: causal_lm, masked_lm, sequence_classification or token_classification
  // (transformers' AutoModelFor... classes);
  // by default a pretrained directory's architectures, else causal_lm.
  ModelTaskName task = ModelTaskName::kDefault;
  std::string pretrained;  // an HF model directory; empty: build from `config`
  nlohmann::json config = nlohmann::json::object();  // HF config.json keys for `type`
};

// `metrics:` names (train/metrics.h); eval_loss is always computed.
enum class Metric {
  kPerplexity, kAccuracy, kPrecisionMacro, kRecallMacro, kF1Macro, kPrecisionMicro, kRecallMicro, kF1Micro,
  kExactMatch
};
const NameTable<Metric>& metric_names();

// `callbacks:` entries: a name from the callback registry and that callback's options.
struct CallbackSpec {
  std::string name;
  nlohmann::json options = nlohmann::json::object();
  std::string where;  // for the callback's own error messages
};

struct Config {
  TrainingArguments args;
  ModelOptions model;
  DataOptions data;
  std::vector<CallbackSpec> callbacks;
  std::vector<Metric> metrics = {Metric::kPerplexity};
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

// Typed and validated; every error names the key, the value and where it came from.
Config config_resolve(const ConfigSource& src);

// The resolved config as a tree of hftrain's keys (for `hftrain config` and checkpoints).
nlohmann::json config_to_json(const Config& c);
// YAML text of a JSON tree (block style), for printing.
std::string json_to_yaml(const nlohmann::json& j);
// The resolved config as YAML, each value given in `src` marked with where it came from
// ("# run.yaml:4", "# --set learning_rate"); unmarked values are defaults.
std::string config_describe(const Config& c, const ConfigSource* src);

}  // namespace hftrain
