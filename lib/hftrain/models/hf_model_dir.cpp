#include "hftrain/models/hf_model_dir.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/safetensors.h"
#include "hftrain/models/layers.h"

#include <ATen/core/grad_mode.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <filesystem>

namespace hftrain {

namespace {

std::vector<ModelFamily>& families() {
  static std::vector<ModelFamily> all;
  return all;
}

const ModelFamily* find_family(const std::string& model_type) {
  for (const ModelFamily& f : families())
    if (f.model_type == model_type) return &f;
  return nullptr;
}

}  // namespace

void model_family_add(ModelFamily family) {
  if (find_family(family.model_type)) fail_runtime("model type \"{}\" registered twice", family.model_type);
  families().push_back(std::move(family));
}

const ModelFamily& model_family(const std::string& model_type, const std::string& where) {
  if (const ModelFamily* f = find_family(model_type)) return *f;
  std::vector<std::string> known;
  for (const ModelFamily& f : families()) known.push_back(f.model_type);
  fail("{} (from {})", unknown_name_message("model type", model_type, known), where);
}

std::unique_ptr<Model> model_build(const std::string& model_type, const nlohmann::json& config,
                                   const std::string& where, bool strict) {
  const ModelFamily& f = model_family(model_type, where);
  std::vector<std::string> known;
  for (const auto& [task, name] : f.architectures) known.push_back(name);
  return f.create(model_architecture(config, known.front(), known, where), config, where, strict);
}

std::string model_architecture(const nlohmann::json& config, const std::string& fallback,
                               const std::vector<std::string>& known, const std::string& where) {
  if (!config.contains("architectures") || !config["architectures"].is_array() || config["architectures"].empty())
    return fallback;
  const nlohmann::json& a = config["architectures"][0];
  HFT_CHECK(a.is_string(), "{}: \"architectures\" must list class names, got {}", where, a.dump());
  const std::string arch = a.get<std::string>();
  if (std::find(known.begin(), known.end(), arch) == known.end())
    fail("{}: architecture {} is not available in hftrain; available: {}", where, arch, join(known, ", "));
  return arch;
}

namespace {

// transformers' class for a family's head: the family's own, else the name transformers would
// give it (which model_architecture then refuses, listing the ones the family has).
std::string architecture_for(const std::string& type, ModelTaskName task) {
  const ModelFamily* f = find_family(type);
  if (!f || task == ModelTaskName::kDefault) return "";
  for (const auto& [t, name] : f->architectures)
    if (t == task) return name;
  switch (task) {
    case ModelTaskName::kCausalLM: return f->class_prefix + "ForCausalLM";
    case ModelTaskName::kMaskedLM: return f->class_prefix + "ForMaskedLM";
    case ModelTaskName::kSequenceClassification: return f->class_prefix + "ForSequenceClassification";
    case ModelTaskName::kTokenClassification: return f->class_prefix + "ForTokenClassification";
    case ModelTaskName::kDefault: break;
  }
  return "";
}

}  // namespace

nlohmann::json model_config_tree(const ModelOptions& opts) {
  nlohmann::json cfg = opts.config;
  std::string type = opts.type;
  if (!opts.pretrained.empty()) {
    const std::string config_path = opts.pretrained + "/config.json";
    std::error_code ec;
    HFT_CHECK(std::filesystem::is_directory(opts.pretrained, ec), "model.pretrained: not a directory: {}",
              opts.pretrained);
    cfg = io::read_json_file(config_path);
    HFT_CHECK(cfg.is_object() && cfg.contains("model_type") && cfg["model_type"].is_string(),
              "{}: missing \"model_type\"", config_path);
    // Config keys given in the hftrain config override the pretrained ones (e.g. dropout).
    for (const auto& [k, v] : opts.config.items()) cfg[k] = v;
    type = cfg["model_type"].get<std::string>();
  }
  if (opts.task != ModelTaskName::kDefault) {
    const std::string arch = architecture_for(type, opts.task);
    if (!arch.empty()) cfg["architectures"] = nlohmann::json::array({arch});
  }
  return cfg;
}

ModelTask model_task(const nlohmann::json& config_tree) {
  const std::string arch = config_tree.contains("architectures") && config_tree["architectures"].is_array() &&
                                   !config_tree["architectures"].empty() && config_tree["architectures"][0].is_string()
                               ? config_tree["architectures"][0].get<std::string>()
                               : "";
  if (ends_with(arch, "ForSequenceClassification")) return ModelTask::kSequenceClassification;
  if (ends_with(arch, "ForTokenClassification")) return ModelTask::kTokenClassification;
  if (ends_with(arch, "ForMaskedLM")) return ModelTask::kMaskedLM;
  if (arch.empty() && config_tree.value("model_type", "") == "bert") return ModelTask::kMaskedLM;
  return ModelTask::kCausalLM;
}

std::shared_ptr<Model> model_create(const ModelOptions& opts) {
  const nlohmann::json cfg = model_config_tree(opts);
  if (opts.pretrained.empty()) return model_build(opts.type, cfg, "model.config", true);
  const std::string config_path = opts.pretrained + "/config.json";
  std::shared_ptr<Model> model = model_build(cfg["model_type"].get<std::string>(), cfg, config_path, false);
  const std::string single = opts.pretrained + "/model.safetensors";
  const std::string index = opts.pretrained + "/model.safetensors.index.json";
  std::error_code ec;
  model_load_weights(*model, !std::filesystem::exists(single, ec) && std::filesystem::exists(index, ec) ? index : single);
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
  // A sharded checkpoint: model.safetensors.index.json's weight_map names each tensor's file.
  std::vector<std::string> files = {path};
  std::map<std::string, std::string> shard_of;
  if (ends_with(path, ".index.json")) {
    const nlohmann::json index = io::read_json_file(path);
    HFT_CHECK(index.contains("weight_map") && index["weight_map"].is_object(), "{}: no \"weight_map\" object", path);
    const std::string dir = std::filesystem::path(path).parent_path().string();
    files.clear();
    for (const auto& [name, file] : index["weight_map"].items()) {
      HFT_CHECK(file.is_string() && file.get<std::string>().find('/') == std::string::npos,
                "{}: weight_map[\"{}\"] must be a file name beside the index, got {}", path, name, file.dump());
      const std::string shard = dir + "/" + file.get<std::string>();
      shard_of[name] = shard;
      if (std::find(files.begin(), files.end(), shard) == files.end()) files.push_back(shard);
    }
  }
  at::NoGradGuard no_grad;
  auto params = model.named_parameters();
  const auto aliases = model.tied_aliases();
  std::set<std::string> loaded;
  for (const std::string& file_path : files) {
    io::SafetensorsFile file = io::safetensors_load(file_path);
    for (const auto& [name, t] : file.tensors) {
      HFT_CHECK(params.contains(name) || std::find(aliases.begin(), aliases.end(), name) != aliases.end(),
                "{}: unexpected tensor \"{}\" for model type {}", file_path, name, model.model_type());
      if (!params.contains(name)) continue;
      at::Tensor& p = params[name];
      HFT_CHECK(t.sizes() == p.sizes(), "{}: tensor \"{}\" has shape [{}], the model expects [{}]", file_path, name,
                fmt::join(t.sizes(), ","), fmt::join(p.sizes(), ","));
      p.copy_(t);
      loaded.insert(name);
    }
  }
  for (const auto& p : params)
    HFT_CHECK(loaded.count(p.key()), "{}: missing tensor \"{}\"{}", path, p.key(),
              shard_of.count(p.key()) ? " (in " + shard_of[p.key()] + ")" : "");
}

}  // namespace hftrain
