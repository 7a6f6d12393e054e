#include "hftrain/models/lora.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/text/regex.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/safetensors.h"
#include "hftrain/models/layers.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace hftrain {

namespace {

const std::string kPrefix = "base_model.model.";

// PEFT's check_target_module_exists.
bool is_target(const LoraConfig& c, const std::string& name, const Regex* regex) {
  if (c.target_regex) {
    std::vector<Span> m;
    regex->find_all(name, m);
    return !m.empty();
  }
  for (const std::string& t : c.target_modules)
    if (name == t || ends_with(name, "." + t)) return true;
  return false;
}

// Whether parameter `name` is inside a modules_to_save module: PEFT's _set_trainable wraps
// every module whose name ends with an entry (no dot needed).
bool is_saved_module(const LoraConfig& c, const std::string& name) {
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
    const std::string module = name.substr(0, dot);
    for (const std::string& t : c.modules_to_save)
      if (ends_with(module, t)) return true;
  }
  return false;
}

}  // namespace

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

nlohmann::json LoraConfig::adapter_config() const {
  nlohmann::json targets = target_regex ? nlohmann::json(*target_regex) : nlohmann::json(target_modules);
  nlohmann::json init = init_lora_weights == "gaussian" ? nlohmann::json("gaussian")
                                                        : nlohmann::json(init_lora_weights == "true");
  return {{"alpha_pattern", nlohmann::json::object()},
          {"auto_mapping", nullptr},
          {"base_model_name_or_path", base_model_name_or_path},
          {"bias", bias},
          {"eva_config", nullptr},
          {"exclude_modules", nullptr},
          {"fan_in_fan_out", fan_in_fan_out},
          {"inference_mode", true},
          {"init_lora_weights", init},
          {"layer_replication", nullptr},
          {"layers_pattern", nullptr},
          {"layers_to_transform", nullptr},
          {"loftq_config", nlohmann::json::object()},
          {"lora_alpha", lora_alpha == std::floor(lora_alpha) ? nlohmann::json(static_cast<int64_t>(lora_alpha))
                                                              : nlohmann::json(lora_alpha)},
          {"lora_bias", false},
          {"lora_dropout", lora_dropout},
          {"megatron_config", nullptr},
          {"megatron_core", "megatron.core"},
          {"modules_to_save", modules_to_save.empty() ? nlohmann::json(nullptr) : nlohmann::json(modules_to_save)},
          {"peft_type", "LORA"},
          {"r", r},
          {"rank_pattern", nlohmann::json::object()},
          {"revision", nullptr},
          {"target_modules", targets},
          {"task_type", task_type},
          {"use_dora", false},
          {"use_rslora", use_rslora}};
}

LoraConfig lora_config_from_json(const nlohmann::json& section, const std::string& where) {
  HFT_CHECK(section.is_object(), "{}: peft must be a mapping of LoraConfig keys, not {}", where, section.dump());
  nlohmann::json j = section;
  std::string adapter;
  bool save_merged = false;
  if (j.contains("save_merged")) {
    HFT_CHECK(j["save_merged"].is_boolean(), "{}: peft.save_merged must be true or false, not {}", where,
              j["save_merged"].dump());
    save_merged = j["save_merged"].get<bool>();
    j.erase("save_merged");
  }
  if (j.contains("adapter")) {
    HFT_CHECK(j["adapter"].is_string(), "{}: peft.adapter must be an adapter directory, not {}", where,
              j["adapter"].dump());
    adapter = j["adapter"].get<std::string>();
    j.erase("adapter");
    HFT_CHECK(j.empty(), "{}: peft.adapter {} brings its own adapter_config.json; remove peft.{} (only adapter and "
              "save_merged go beside it)", where, adapter, j.begin().key());
    const std::string file = adapter + "/adapter_config.json";
    HFT_CHECK(std::filesystem::is_regular_file(file), "{}: peft.adapter {} has no adapter_config.json", where, adapter);
    LoraConfig c = lora_config_from_json(io::read_json_file(file), file);
    c.adapter = adapter;
    c.save_merged = save_merged;
    return c;
  }
  LoraConfig c;
  c.save_merged = save_merged;
  // Keys of PEFT's LoraConfig that adapter_config.json carries and that change nothing here
  // at their defaults; any other value is refused.
  static const std::map<std::string, nlohmann::json> inert = {
      {"alpha_pattern", nlohmann::json::object()}, {"rank_pattern", nlohmann::json::object()},
      {"auto_mapping", nullptr}, {"eva_config", nullptr}, {"exclude_modules", nullptr},
      {"layer_replication", nullptr}, {"layers_pattern", nullptr}, {"layers_to_transform", nullptr},
      {"loftq_config", nlohmann::json::object()}, {"lora_bias", false}, {"megatron_config", nullptr},
      {"megatron_core", "megatron.core"}, {"use_dora", false}, {"revision", nullptr}};
  std::vector<std::string> known = {"adapter", "save_merged", "peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
                                    "use_rslora", "fan_in_fan_out", "modules_to_save", "init_lora_weights",
                                    "task_type", "base_model_name_or_path", "inference_mode"};
  for (const auto& [k, v] : inert) known.push_back(k);
  auto number = [&](const char* key, const nlohmann::json& v) {
    HFT_CHECK(v.is_number(), "{}: peft.{} must be a number, not {}", where, key, v.dump());
    return v.get<double>();
  };
  auto names = [&](const char* key, const nlohmann::json& v) {
    std::vector<std::string> out;
    HFT_CHECK(v.is_null() || v.is_array(), "{}: peft.{} must be a list of module names, not {}", where, key, v.dump());
    if (v.is_array())
      for (const auto& e : v) {
        HFT_CHECK(e.is_string(), "{}: peft.{} holds {}, not a module name", where, key, e.dump());
        out.push_back(e.get<std::string>());
      }
    return out;
  };
  for (const auto& [key, v] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      const std::string near = nearest_name(key, known);
      fail("{}: peft.{} is not a LoraConfig key{}", where, key, near.empty() ? "" : " (did you mean " + near + "?)");
    }
    if (auto it = inert.find(key); it != inert.end()) {
      HFT_CHECK(v == it->second || (v.is_null() && it->second.is_object() && it->second.empty()),
                "{}: peft.{} = {} is not supported (only {})", where, key, v.dump(), it->second.dump());
    } else if (key == "peft_type") {
      HFT_CHECK(v == "LORA", "{}: peft.peft_type {} is not supported; hftrain trains LORA adapters", where, v.dump());
    } else if (key == "r") {
      HFT_CHECK(v.is_number_integer() && v.get<int64_t>() > 0, "{}: peft.r must be a positive integer, not {}", where,
                v.dump());
      c.r = v.get<int64_t>();
    } else if (key == "lora_alpha") {
      c.lora_alpha = number("lora_alpha", v);
    } else if (key == "lora_dropout") {
      c.lora_dropout = number("lora_dropout", v);
      HFT_CHECK(c.lora_dropout >= 0 && c.lora_dropout < 1, "{}: peft.lora_dropout must be in [0, 1), not {}", where,
                v.dump());
    } else if (key == "target_modules") {
      if (v.is_string()) {
        c.target_regex = v.get<std::string>();
      } else {
        c.target_modules = names("target_modules", v);
      }
    } else if (key == "bias") {
      HFT_CHECK(v == "none" || v == "all" || v == "lora_only",
                "{}: peft.bias must be none, all or lora_only, not {}", where, v.dump());
      c.bias = v.get<std::string>();
    } else if (key == "use_rslora" || key == "fan_in_fan_out" || key == "inference_mode") {
      HFT_CHECK(v.is_boolean(), "{}: peft.{} must be true or false, not {}", where, key, v.dump());
      if (key == "use_rslora") c.use_rslora = v.get<bool>();
      if (key == "fan_in_fan_out") c.fan_in_fan_out = v.get<bool>();
    } else if (key == "modules_to_save") {
      c.modules_to_save = names("modules_to_save", v);
    } else if (key == "init_lora_weights") {
      HFT_CHECK(v.is_boolean() || v == "gaussian",
                "{}: peft.init_lora_weights must be true, false or \"gaussian\", not {}", where, v.dump());
      c.init_lora_weights = v.is_boolean() ? (v.get<bool>() ? "true" : "false") : "gaussian";
    } else if (key == "task_type") {
      HFT_CHECK(v.is_string() || v.is_null(), "{}: peft.task_type must be a string, not {}", where, v.dump());
      if (v.is_string()) c.task_type = v.get<std::string>();
    } else if (key == "base_model_name_or_path") {
      if (v.is_string()) c.base_model_name_or_path = v.get<std::string>();
    }
  }
  HFT_CHECK(c.target_regex || !c.target_modules.empty(),
            "{}: peft.target_modules is required: the names of the linear modules to adapt (e.g. [q_proj, v_proj])",
            where);
  return c;
}

void LoraHost::attach_lora(torch::nn::Module& self, const LoraConfig& c) {
  HFT_CHECK(!lora_A_, "a LoRA adapter is already attached to {}", self.name());
  const auto [out, in] = lora_shape();
  auto a = std::make_shared<torch::nn::LinearImpl>(torch::nn::LinearOptions(in, c.r).bias(false));
  auto b = std::make_shared<torch::nn::LinearImpl>(torch::nn::LinearOptions(c.r, out).bias(false));
  a->weight.set_requires_grad(false);
  b->weight.set_requires_grad(false);
  {
    at::NoGradGuard no_grad;
    const at::Tensor& base = lora_base_weight();
    a->to(base.device());
    b->to(base.device());
    // nn.Linear's own init leaves both Kaiming-uniform(a = sqrt(5)); PEFT then resets them.
    if (c.init_lora_weights == "true") {
      torch::nn::init::kaiming_uniform_(a->weight, std::sqrt(5.0));
      b->weight.zero_();
    } else if (c.init_lora_weights == "gaussian") {
      a->weight.normal_(0.0, 1.0 / static_cast<double>(c.r));
      b->weight.zero_();
    }
  }
  a->weight.set_requires_grad(true);
  b->weight.set_requires_grad(true);
  lora_A_ = self.register_module("lora_A", a);
  lora_B_ = self.register_module("lora_B", b);
  a_ = a->weight;
  b_ = b->weight;
  scaling_ = c.scaling();
  dropout_ = c.lora_dropout;
}

at::Tensor LoraHost::add_lora(const at::Tensor& x, at::Tensor y, bool training) const {
  if (!lora_A_) return y;
  at::Tensor h = dropout_ > 0 ? at::dropout(x, dropout_, training) : x;
  return y + at::linear(at::linear(h, a_), b_) * scaling_;
}

void LoraHost::merge_lora() {
  if (!lora_A_) return;
  at::NoGradGuard no_grad;
  at::Tensor delta = at::matmul(b_, a_) * scaling_;  // (out, in)
  at::Tensor& w = lora_base_weight();
  w.add_(weight_is_in_out() ? delta.t() : delta);
}

void LoraHost::detach_lora(torch::nn::Module& self) {
  if (!lora_A_) return;
  // torch::nn::Module has no unregister: rebuild the children without the two adapters.
  self.unregister_module("lora_A");
  self.unregister_module("lora_B");
  lora_A_.reset();
  lora_B_.reset();
  a_ = b_ = at::Tensor();
}

void LoraHost::hide_lora(torch::nn::Module& self) {
  self.unregister_module("lora_A");
  self.unregister_module("lora_B");
}

void LoraHost::show_lora(torch::nn::Module& self) {
  self.register_module("lora_A", lora_A_);
  self.register_module("lora_B", lora_B_);
}

LoraSummary lora_apply(torch::nn::Module& model, const LoraConfig& c, const std::string& where) {
  std::optional<Regex> regex;
  if (c.target_regex) regex.emplace("\\A(?:" + *c.target_regex + ")\\z", where + ": peft.target_modules");
  LoraSummary s;
  std::vector<std::string> linear;  // for the error: what could be adapted
  std::vector<std::string> matched_names;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* host = dynamic_cast<LoraHost*>(item.value().get());
    if (!host) continue;
    linear.push_back(item.key());
    if (!is_target(c, item.key(), regex ? &*regex : nullptr)) continue;
    HFT_CHECK(host->weight_is_in_out() == c.fan_in_fan_out,
              "{}: peft.fan_in_fan_out is {} but {} stores its weight as {}; set fan_in_fan_out: {}", where,
              c.fan_in_fan_out, item.key(), host->weight_is_in_out() ? "[in, out] (Conv1D)" : "[out, in] (nn.Linear)",
              host->weight_is_in_out());
    s.targets.push_back(item.key());
  }
  if (s.targets.empty()) {
    // The short names, once each: what target_modules can list.
    std::vector<std::string> short_names;
    for (const std::string& n : linear) {
      const std::string tail = n.substr(n.rfind('.') + 1);
      if (std::find(short_names.begin(), short_names.end(), tail) == short_names.end()) short_names.push_back(tail);
    }
    fail("{}: peft.target_modules {} matches none of the model's linear modules: {}", where,
         c.target_regex ? *c.target_regex : join(c.target_modules, ", "), join(short_names, ", "));
  }
  for (const std::string& t : c.target_modules) {
    bool any = false;
    for (const std::string& n : s.targets) any = any || n == t || ends_with(n, "." + t);
    HFT_CHECK(any, "{}: peft.target_modules names {}, which is none of the model's linear modules", where, t);
  }
  // Freeze the base, then attach (the adapters are trainable).
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  for (const auto& item : model.named_modules("", false)) {
    if (std::find(s.targets.begin(), s.targets.end(), item.key()) == s.targets.end()) continue;
    dynamic_cast<LoraHost*>(item.value().get())->attach_lora(*item.value(), c);
  }
  for (const auto& p : model.named_parameters()) {
    const std::string& n = p.key();
    bool train = n.find("lora_") != std::string::npos;
    if (c.bias == "all" && ends_with(n, ".bias")) train = true;
    if (c.bias == "lora_only" && ends_with(n, ".bias")) {
      const std::string module = n.substr(0, n.size() - 5);
      train = std::find(s.targets.begin(), s.targets.end(), module) != s.targets.end();
    }
    if (is_saved_module(c, n)) train = true;
    if (train) p.value().set_requires_grad(true);
  }
  for (const std::string& m : c.modules_to_save) {
    bool any = false;
    for (const auto& item : model.named_modules("", false)) any = any || ends_with(item.key(), m);
    HFT_CHECK(any, "{}: peft.modules_to_save names {}, which is no module of the model", where, m);
  }
  for (const auto& p : model.parameters()) {
    s.total += p.numel();
    if (p.requires_grad()) s.trainable += p.numel();
  }
  return s;
}

LoraSummary lora_prepare(torch::nn::Module& model, const LoraConfig& c, const std::string& from) {
  LoraSummary s = lora_apply(model, c, "peft");
  if (!from.empty()) lora_load_weights(model, c, from);
  return s;
}

std::map<std::string, at::Tensor> lora_state_dict(torch::nn::Module& model, const LoraConfig& c) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) {
    const std::string& n = p.key();
    bool keep = n.find("lora_") != std::string::npos;
    if (ends_with(n, ".bias") && c.bias == "all") keep = true;
    if (ends_with(n, ".bias") && c.bias == "lora_only") keep = p.value().requires_grad();
    if (is_saved_module(c, n)) keep = true;
    if (keep) out.emplace(kPrefix + n, p.value());
  }
  return out;
}

void lora_save(torch::nn::Module& model, const LoraConfig& c, const std::string& dir) {
  std::filesystem::create_directories(dir);
  io::NamedTensors tensors;
  for (auto& [k, v] : lora_state_dict(model, c)) tensors.emplace_back(k, v.detach().to(at::kCPU).contiguous());
  io::safetensors_save(dir + "/adapter_model.safetensors", tensors);
  io::write_json_file(dir + "/adapter_config.json", c.adapter_config());
}

void lora_load_weights(torch::nn::Module& model, const LoraConfig& c, const std::string& dir) {
  const std::string path = dir + "/adapter_model.safetensors";
  io::SafetensorsFile f = io::safetensors_load(path);
  std::map<std::string, at::Tensor> mine = lora_state_dict(model, c);
  at::NoGradGuard no_grad;
  for (auto& [k, v] : f.tensors) {
    // PEFT files saved with the adapter's name keep ".default"; both load.
    std::string key = k;
    for (size_t p; (p = key.find(".default")) != std::string::npos;) key.erase(p, 8);
    auto it = mine.find(key);
    HFT_CHECK(it != mine.end(), "{}: {} is no tensor of this adapter (its keys look like {})", path, k,
              mine.empty() ? std::string("nothing") : mine.begin()->first);
    HFT_CHECK(it->second.sizes() == v.sizes(), "{}: {} has shape {}, the adapter's is {}", path, k,
              c10::str(v.sizes()), c10::str(it->second.sizes()));
    it->second.copy_(v);
    mine.erase(it);
  }
  HFT_CHECK(mine.empty(), "{}: has no {} (and {} other adapter tensors)", path,
            mine.empty() ? "" : mine.begin()->first, mine.size() - 1);
}

void lora_merge_and_unload(torch::nn::Module& model) {
  for (const auto& item : model.named_modules("", false)) {
    auto* host = dynamic_cast<LoraHost*>(item.value().get());
    if (!host || !host->has_lora()) continue;
    host->merge_lora();
    host->detach_lora(*item.value());
  }
  for (auto& p : model.parameters()) p.set_requires_grad(true);
}

void lora_with_merged(torch::nn::Module& model, const std::function<void()>& fn) {
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, at::Tensor>> merged;  // module, its weight before
  for (const auto& item : model.named_modules("", false)) {
    auto* host = dynamic_cast<LoraHost*>(item.value().get());
    if (!host || !host->has_lora()) continue;
    merged.emplace_back(item.value(), host->lora_base_weight().detach().clone());
    host->merge_lora();
    host->hide_lora(*item.value());
  }
  auto restore = [&] {
    at::NoGradGuard no_grad;
    for (auto& [module, weight] : merged) {
      auto* host = dynamic_cast<LoraHost*>(module.get());
      host->lora_base_weight().copy_(weight);
      host->show_lora(*module);
    }
  };
  try {
    fn();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

}  // namespace hftrain
