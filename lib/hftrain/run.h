// The commands behind the CLI: config in, components built, the Trainer run. User
// errors (hftrain::Error kUser) are all raised before anything is written to output_dir.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/generate.h"

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

// `hftrain generate`: prompts from --prompt and the lines (or rows' text field) of --input,
// each encoded as transformers' tokenizer(text) encodes it and continued by the checkpoint's
// causal LM (a LoRA checkpoint's adapter on model.pretrained); stopping at the model's
// eos_token_id unless ignore_eos. Prints prompt + continuation per line, or writes JSONL
// (index, prompt, generated_ids, generated_text) to `output`.
struct GenerateRequest {
  std::vector<std::string> prompts;
  std::string input, output;
  bool ignore_eos = false;
  GenerateOptions options;
};
void run_generate(const Config& config, const std::string& checkpoint, const GenerateRequest& request);

}  // namespace hftrain
