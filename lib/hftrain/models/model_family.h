// A model family, as config.json's model_type names it: transformers' classes for each head
// and how one is built. A family is its file, which defines its ModelFamily, and one line in
// builtins.cpp (model_family_add).
#pragma once

#include "hftrain/models/model.h"
#include "hftrain/models/model_options.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hftrain {

struct ModelFamily {
  std::string model_type;    // "gpt2"
  std::string class_prefix;  // "GPT2": what transformers' classes for other heads would be called
  // transformers' class per head; the first is built when a config names none.
  std::vector<std::pair<ModelTaskName, std::string>> architectures;
  // Builds `architecture` (one of the above) from a config.json tree; strict for a config the
  // user wrote (unknown keys are errors), not for one HF saved (its keys are kept for export).
  std::unique_ptr<Model> (*create)(const std::string& architecture, const nlohmann::json& config,
                                   const std::string& where, bool strict) = nullptr;
};

void model_family_add(ModelFamily family);  // a family registered twice is a runtime error
// The family of `model_type`; a user error naming `where` and the known types otherwise.
const ModelFamily& model_family(const std::string& model_type, const std::string& where);
// The model `config` describes: its family by `model_type`, its class by "architectures"
// (one the family lacks is a user error listing those it has).
std::unique_ptr<Model> model_build(const std::string& model_type, const nlohmann::json& config,
                                   const std::string& where, bool strict);

}  // namespace hftrain
