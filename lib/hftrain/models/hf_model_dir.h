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

// The head model_create will build: from model_config_tree's "architectures", else the first
// class of the family (its "model_type", else `type` for a model built from scratch).
ModelTask model_task(const nlohmann::json& config_tree, const std::string& type);

// `model: {pretrained: DIR}` loads DIR/config.json and DIR/model.safetensors;
// `model: {type, config}` builds a fresh model with HF's initialisation.
std::shared_ptr<Model> model_create(const ModelOptions& opts);

struct SaveWeights {
  std::string torch_dtype = "float32";  // float32, bfloat16 or float16
  int64_t max_shard_size = 5000000000;  // bytes
};
// Writes model.safetensors (parameters by HF name; tied aliases are not stored, as
// save_pretrained does) and config.json into `dir`, each file atomically; beyond
// max_shard_size, shards as save_pretrained does (huggingface_hub's split: tensors in order,
// a new shard when the next would overflow this one, a tensor larger than the limit alone)
// with model.safetensors.index.json. Weight files of another layout left in `dir` by an
// earlier save are removed, so that from_pretrained never reads a stale one.
void model_save_pretrained(Model& model, const std::string& dir, const SaveWeights& how = {});
// A directory's weights: model.safetensors, else model.safetensors.index.json.
std::string model_weights_path(const std::string& dir);
// "5GB", "500MB", "2GiB", or bytes, as transformers' convert_file_size_to_int reads it.
int64_t parse_file_size(const nlohmann::json& v, const std::string& where);

// Loads weights by name from a model.safetensors, or from the shards a
// model.safetensors.index.json maps; every parameter must be present with its shape. Names
// that are tied aliases of a parameter (lm_head.weight) are accepted and ignored.
void model_load_weights(Model& model, const std::string& safetensors_path);

}  // namespace hftrain
