// The TrainingArguments surface: every field of transformers' TrainingArguments (4.46 to v5)
// by HF name, what hftrain does with it, HF's __post_init__ defaults and cross-field rules.
#pragma once

#include "hftrain/config/training_arguments.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace hftrain {

// What hftrain does with a field.
enum class FieldRole {
  kUsed,         // a typed member of TrainingArguments
  kNoEffect,     // accepted with any value of its type; changes nothing in hftrain
  kDefaultOnly,  // a backend hftrain does not have: refused unless at its default
  kRenamed,      // HF's old spelling of another field: works, with one deprecation line
};

struct FieldInfo {
  std::string name;
  std::string group;  // HF's grouping: batch, schedule, optimizer, precision, logging, ...
  FieldRole role;
  nlohmann::json hf_default;
  std::string note;  // kDefaultOnly: why and what to use instead; kRenamed: the new name
};

// Every field, in HF's declaration order (plus the v5 names HF added).
const std::vector<FieldInfo>& training_fields();

// Origin of a key for messages ("run.yaml:4", "--set", "default").
using WhereFn = std::function<std::string(const std::string& key)>;

// Reads the TrainingArguments keys of `tree` (a config's top level; `skip` names the other
// sections) into `args`, then applies HF's __post_init__ and cross-field rules. Every bad
// value or combination is a user error with HF's wording where HF has one.
TrainingArguments training_args_read(const nlohmann::json& tree, const std::vector<std::string>& skip,
                                     const WhereFn& where, bool has_eval_dataset);

// Every field with HF's name, in HF's order: what training_args.json holds.
nlohmann::json training_args_to_json(const TrainingArguments& a);

}  // namespace hftrain
