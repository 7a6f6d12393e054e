// The commands behind the CLI: config in, components built, the Trainer run. User
// errors (hftrain::Error kUser) are all raised before anything is written to output_dir.
#pragma once

#include "hftrain/config/config.h"

#include <optional>
#include <string>
#include <vector>

namespace hftrain {

// The built-in default config (configs/default.yaml, compiled in).
extern const char* const kDefaultConfigYaml;

// Defaults < config file (the built-in default when none) < --set overrides.
ConfigSource config_source(const std::optional<std::string>& config_path, const std::vector<std::string>& sets);
// A checkpoint's saved config, then --set overrides.
ConfigSource config_source_from_checkpoint(const std::string& checkpoint, const std::vector<std::string>& sets);
// `hftrain resume`: the checkpoint's saved config; or, for a checkpoint hftrain did not write
// (the Python Trainer's: no hftrain_config.json, a pickled training_args.bin), the run's
// config file with the model taken from the checkpoint. Then --set overrides, and
// resume_from_checkpoint set to it.
ConfigSource config_source_for_resume(const std::string& checkpoint, const std::optional<std::string>& config_path,
                                      const std::vector<std::string>& sets);

void run_train(const Config& config);
void run_evaluate(const Config& config, const std::optional<std::string>& checkpoint);
// Predictions of a checkpoint's model on a UTF-8 text file (or JSON Lines with a "text"
// field): one JSON line per block_size window with the argmax next tokens, plus
// test_results.json (test_loss, the config's metrics, test_runtime, ...) beside `output`.
// A classifier predicts a class per example (a line of a text file, a row of JSON Lines or
// CSV/TSV), with metrics when the rows carry labels. logits: a safetensors file to write the
// logits to, under "logits" (empty: none).
void run_predict(const Config& config, const std::string& checkpoint, const std::string& input,
                 const std::string& output, const std::string& logits = "");

}  // namespace hftrain
