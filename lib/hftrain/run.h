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
// Predictions of a checkpoint's model on `input` (predict_input.h says how each task reads
// it): one JSON line per row in `output`, plus test_results.json beside it (test_loss and the
// config's metrics when the rows carry labels, test_runtime, ...). logits: a safetensors file
// to write the logits to, float32 under "logits" (per-token rows padded with -100); empty: none.
void run_predict(const Config& config, const std::string& checkpoint, const std::string& input,
                 const std::string& output, const std::string& logits = "");

}  // namespace hftrain
