// HF model directories: config.json + model.safetensors, as save_pretrained writes and
// from_pretrained reads them.
#pragma once

#include "hftrain/models/model.h"
#include "hftrain/models/model_family.h"
#include "hftrain/models/model_options.h"

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

// The class a config.json's "architectures" names (`fallback` when it names none); one not
// in `known` is a user error listing them.
std::string model_architecture(const nlohmann::json& config, const std::string& fallback,
                               const std::vector<std::string>& known, const std::string& where);

// The config.json tree model_create builds from: the pretrained one (or model.config),
// model.config's keys over it, and model.task as the "architectures" entry.
nlohmann::json model_config_tree(const ModelOptions& opts);

// The head model_create will build, from model_config_tree's "architectures".
ModelTask model_task(const nlohmann::json& config_tree);

// `model: {pretrained: DIR}` loads DIR/config.json and DIR/model.safetensors;
// `model: {type, config}` builds a fresh model with HF's initialisation.
std::shared_ptr<Model> model_create(const ModelOptions& opts);

// Writes model.safetensors (parameters by HF name; tied aliases are not stored, as
// save_pretrained does) and config.json into `dir`, each file atomically.
void model_save_pretrained(Model& model, const std::string& dir);

// Loads weights by name from a model.safetensors, or from the shards a
// model.safetensors.index.json maps; every parameter must be present with its shape. Names
// that are tied aliases of a parameter (lm_head.weight) are accepted and ignored.
void model_load_weights(Model& model, const std::string& safetensors_path);

}  // namespace hftrain
