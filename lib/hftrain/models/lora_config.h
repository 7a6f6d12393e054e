// PEFT's LoraConfig: its keys and defaults, as the `peft:` config section and
// adapter_config.json carry them (models/lora.h attaches the adapters).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0.0;
  std::vector<std::string> target_modules;  // a module whose name is one, or ends with "." + one
  std::optional<std::string> target_regex;  // target_modules given as a string: it must match a whole name
  std::string bias = "none";                // none | all | lora_only
  bool use_rslora = false;                  // scaling lora_alpha / sqrt(r), not / r
  bool fan_in_fan_out = false;              // the target stores its weight [in, out] (GPT-2's Conv1D)
  std::vector<std::string> modules_to_save;  // trained in full and saved with the adapter
  std::string init_lora_weights = "true";    // true (A Kaiming-uniform, B zero) | gaussian | false
  std::string task_type = "CAUSAL_LM";
  std::string base_model_name_or_path;
  // hftrain's own keys, not written to adapter_config.json: an adapter directory to continue
  // training (its adapter_config.json gives the keys above), and whether the final save also
  // writes the merged model (merge_and_unload) to output_dir/merged.
  std::string adapter;
  bool save_merged = false;

  double scaling() const;
  // PEFT's adapter_config.json for this config.
  nlohmann::json adapter_config() const;
};

// The `peft:` config section (or an adapter_config.json): LoraConfig's keys; an unknown key
// is refused naming the nearest one. With `adapter`, the keys come from that directory's
// adapter_config.json and the section may hold only adapter and save_merged. `where` names the
// file for errors.
LoraConfig lora_config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace hftrain
