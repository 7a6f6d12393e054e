// HF model directories: config.json + model.safetensors, as save_pretrained writes and
// from_pretrained reads them.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/core/registry.h"
#include "hftrain/models/model.h"

#include <memory>
#include <string>

namespace hftrain {

// model type -> factory(HF config.json tree, where it came from, strict): strict for a
// config the user wrote (unknown keys are errors), not for one HF saved (kept for export).
using ModelRegistry = Registry<Model, const nlohmann::json&, const std::string&, bool>;
ModelRegistry& model_registry();

// `model: {pretrained: DIR}` loads DIR/config.json and DIR/model.safetensors;
// `model: {type, config}` builds a fresh model with HF's initialisation.
std::shared_ptr<Model> model_create(const ModelOptions& opts);

// Writes model.safetensors (parameters by HF name; tied aliases are not stored, as
// save_pretrained does) and config.json into `dir`, each file atomically.
void model_save_pretrained(Model& model, const std::string& dir);

// Loads weights by name; every parameter must be present with its shape. Names that are
// tied aliases of a parameter (lm_head.weight) are accepted and ignored.
void model_load_weights(Model& model, const std::string& safetensors_path);

}  // namespace hftrain
