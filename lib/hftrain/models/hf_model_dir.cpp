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
#include <cctype>
#include <map>
#include <regex>
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

ModelTask model_task(const nlohmann::json& config_tree, const std::string& type) {
  std::string arch = config_tree.contains("architectures") && config_tree["architectures"].is_array() &&
                             !config_tree["architectures"].empty() && config_tree["architectures"][0].is_string()
                         ? config_tree["architectures"][0].get<std::string>()
                         : "";
  if (arch.empty()) {  // what model_build builds when the config names no class
    const std::string t = config_tree.contains("model_type") && config_tree["model_type"].is_string()
                              ? config_tree["model_type"].get<std::string>()
                              : type;
    if (const ModelFamily* f = find_family(t); f && !f->architectures.empty()) arch = f->architectures.front().second;
  }
  if (ends_with(arch, "ForSequenceClassification")) return ModelTask::kSequenceClassification;
  if (ends_with(arch, "ForTokenClassification")) return ModelTask::kTokenClassification;
  if (ends_with(arch, "ForMaskedLM")) return ModelTask::kMaskedLM;
  return ModelTask::kCausalLM;
}

std::shared_ptr<Model> model_create(const ModelOptions& opts) {
  const nlohmann::json cfg = model_config_tree(opts);
  if (opts.pretrained.empty()) return model_build(opts.type, cfg, "model.config", true);
  const std::string config_path = opts.pretrained + "/config.json";
  std::shared_ptr<Model> model = model_build(cfg["model_type"].get<std::string>(), cfg, config_path, false);
  model_load_weights(*model, model_weights_path(opts.pretrained));
  return model;
}

namespace {

at::ScalarType dtype_named(const std::string& name) {
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  HFT_CHECK(name == "float32", "model.torch_dtype {} is not one of float32, bfloat16, float16", name);
  return at::kFloat;
}

bool is_shard_name(const std::string& name) {
  static const std::regex kShard("model-[0-9]{5}-of-[0-9]{5}\\.safetensors");
  return std::regex_match(name, kShard);
}

}  // namespace

int64_t parse_file_size(const nlohmann::json& v, const std::string& where) {
  if (v.is_number_integer() && v.get<int64_t>() > 0) return v.get<int64_t>();
  HFT_CHECK(v.is_string(), "{} must be a size such as \"5GB\" or a number of bytes, got {}", where, clip(v.dump()));
  static const std::regex kSize("([0-9]+(?:\\.[0-9]+)?)\\s*(KB|MB|GB|KIB|MIB|GIB|B)?", std::regex::icase);
  std::smatch m;
  const std::string text = v.get<std::string>();
  HFT_CHECK(std::regex_match(text, m, kSize), "{} must be a size such as \"5GB\" or \"500MB\", got \"{}\"", where,
            clip(text));
  std::string unit = m[2].str();
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const double n = std::stod(m[1].str());
  const double scale = unit == "GIB" ? 1073741824.0 : unit == "MIB" ? 1048576.0 : unit == "KIB" ? 1024.0
                       : unit == "GB"  ? 1e9 : unit == "MB" ? 1e6 : unit == "KB" ? 1e3 : 1.0;
  // transformers: a "b" suffix on GB/MB/KB means bits (a tenth of the bytes' eighth).
  const double bytes = n * scale / (m[2].matched && m[2].str().size() == 2 && m[2].str()[1] == 'b' ? 8.0 : 1.0);
  HFT_CHECK(bytes >= 1 && bytes < 9.2e18, "{} {} is out of range", where, clip(text));
  return static_cast<int64_t>(bytes);
}

std::string model_weights_path(const std::string& dir) {
  std::error_code ec;
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  return !std::filesystem::exists(single, ec) && std::filesystem::exists(index, ec) ? index : single;
}

void model_save_pretrained(Model& model, const std::string& dir, const SaveWeights& how) {
  const at::ScalarType dtype = dtype_named(how.torch_dtype);
  HFT_CHECK(how.max_shard_size > 0, "model.max_shard_size must be > 0, got {}", how.max_shard_size);
  // huggingface_hub's split_state_dict_into_shards: a tensor larger than the limit becomes a
  // shard of its own at once (before the one being filled); otherwise a tensor that would tip
  // the current shard over the limit starts a new one.
  std::vector<io::NamedTensors> shards;
  io::NamedTensors current;
  int64_t in_shard = 0, total = 0;
  for (const auto& p : model.named_parameters()) {
    at::Tensor t = p.value().detach();
    if (t.scalar_type() != dtype) t = t.to(dtype);
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    total += bytes;
    if (bytes > how.max_shard_size) {
      shards.push_back({{p.key(), t}});
      continue;
    }
    if (in_shard + bytes > how.max_shard_size) {
      shards.push_back(std::move(current));
      current.clear();
      in_shard = 0;
    }
    current.emplace_back(p.key(), t);
    in_shard += bytes;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  namespace fs = std::filesystem;
  std::error_code ec;
  std::set<std::string> written;
  if (shards.size() == 1) {
    io::safetensors_save(dir + "/model.safetensors", shards[0]);
    written.insert("model.safetensors");
  } else {
    nlohmann::json map = nlohmann::json::object();
    const size_t n = shards.size();
    for (size_t i = 0; i < n; ++i) {
      const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n);
      io::safetensors_save(dir + "/" + name, shards[i]);
      written.insert(name);
      for (const auto& [key, _] : shards[i]) map[key] = name;
    }
    io::write_json_file(dir + "/model.safetensors.index.json",
                        nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", map}});
    written.insert("model.safetensors.index.json");
  }
  // An earlier save's other layout would be read instead of (or beside) this one.
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool weights = name == "model.safetensors" || name == "model.safetensors.index.json" || is_shard_name(name);
    if (weights && !written.count(name)) fs::remove(e.path(), ec);
  }
  nlohmann::json config = model.hf_config();
  config["torch_dtype"] = how.torch_dtype;
  io::write_json_file(dir + "/config.json", config);
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
