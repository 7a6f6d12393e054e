#include "hftrain/models/hf_model_dir.h"

#include "hftrain/core/error.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/safetensors.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

namespace hftrain {

ModelRegistry& model_registry() {
  static ModelRegistry r("model type");
  return r;
}

std::shared_ptr<Model> model_create(const ModelOptions& opts) {
  if (opts.pretrained.empty()) return model_registry().create(opts.type, opts.config, "model.config", true);
  const std::string config_path = opts.pretrained + "/config.json";
  std::error_code ec;
  HFT_CHECK(std::filesystem::is_directory(opts.pretrained, ec), "model.pretrained: not a directory: {}",
            opts.pretrained);
  nlohmann::json cfg = io::read_json_file(config_path);
  HFT_CHECK(cfg.is_object() && cfg.contains("model_type") && cfg["model_type"].is_string(),
            "{}: missing \"model_type\"", config_path);
  // Config keys given in the hftrain config override the pretrained ones (e.g. dropout).
  for (const auto& [k, v] : opts.config.items()) cfg[k] = v;
  std::shared_ptr<Model> model = model_registry().create(cfg["model_type"].get<std::string>(), cfg, config_path, false);
  model_load_weights(*model, opts.pretrained + "/model.safetensors");
  return model;
}

void model_save_pretrained(Model& model, const std::string& dir) {
  io::NamedTensors tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
  io::safetensors_save(dir + "/model.safetensors", tensors);
  io::write_json_file(dir + "/config.json", model.hf_config());
}

void model_load_weights(Model& model, const std::string& path) {
  std::error_code ec;
  HFT_CHECK(std::filesystem::is_regular_file(path, ec), "model weights not found: {}", path);
  io::SafetensorsFile file = io::safetensors_load(path);
  at::NoGradGuard no_grad;
  auto params = model.named_parameters();
  for (const auto& p : params) {
    auto it = file.tensors.find(p.key());
    HFT_CHECK(it != file.tensors.end(), "{}: missing tensor \"{}\"", path, p.key());
    HFT_CHECK(it->second.sizes() == p.value().sizes(), "{}: tensor \"{}\" has shape [{}], the model expects [{}]",
              path, p.key(), fmt::join(it->second.sizes(), ","), fmt::join(p.value().sizes(), ","));
    p.value().copy_(it->second);
  }
  const auto aliases = model.tied_aliases();
  for (const auto& [name, t] : file.tensors)
    HFT_CHECK(params.contains(name) || std::find(aliases.begin(), aliases.end(), name) != aliases.end(),
              "{}: unexpected tensor \"{}\" for model type {}", path, name, model.model_type());
}

}  // namespace hftrain
