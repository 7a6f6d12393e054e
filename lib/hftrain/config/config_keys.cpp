#include "hftrain/config/config_keys.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/plugin/plugins.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace hftrain {

using json = nlohmann::json;

const std::vector<std::string>& own_top_level_keys() {
  static const std::vector<std::string> keys = {"plugins", "callbacks", "metrics", "stop_on_nonfinite", "fused", "peft"};
  return keys;
}

const NameTable<Metric>& metric_names() {
  static const NameTable<Metric> t = {
      {"perplexity", Metric::kPerplexity},         {"accuracy", Metric::kAccuracy},
      {"precision_macro", Metric::kPrecisionMacro}, {"recall_macro", Metric::kRecallMacro},
      {"f1_macro", Metric::kF1Macro},               {"precision_micro", Metric::kPrecisionMicro},
      {"recall_micro", Metric::kRecallMicro},       {"f1_micro", Metric::kF1Micro},
      {"exact_match", Metric::kExactMatch}};
  return t;
}

void read_plugins(const ConfigSource& src, const json& tree, Config& c) {
  if (tree.contains("plugins") && !tree.at("plugins").is_null()) {
    const json& list = tree.at("plugins");
    HFT_CHECK(list.is_array() && std::all_of(list.begin(), list.end(), [](const json& p) { return p.is_string(); }),
              "key \"plugins\" must be a list of shared library paths (from {})", src.where("plugins"));
    for (const json& p : list) c.plugins.push_back(p.get<std::string>());
    plugins_load(c.plugins, src.where("plugins"));
  }
}

void read_own_keys(const ConfigSource& src, const json& tree, Config& c) {
  if (tree.contains("callbacks") && !tree.at("callbacks").is_null()) {
    const json& list = tree.at("callbacks");
    HFT_CHECK(list.is_array(), "key \"callbacks\" must be a list of names or {{name: ..., options}} (from {})",
              src.where("callbacks"));
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = "callbacks[" + std::to_string(i) + "]";
      CallbackSpec spec;
      spec.where = src.where(path);
      if (list[i].is_string()) {
        spec.name = list[i].get<std::string>();
      } else {
        HFT_CHECK(list[i].is_object() && list[i].contains("name") && list[i]["name"].is_string(),
                  "{} must be a callback name or a mapping with \"name\" (from {})", path, spec.where);
        spec.name = list[i]["name"].get<std::string>();
        spec.options = list[i];
        spec.options.erase("name");
      }
      c.callbacks.push_back(spec);
    }
  }

  if (tree.contains("metrics") && !tree.at("metrics").is_null()) {
    const json& list = tree.at("metrics");
    HFT_CHECK(list.is_array(), "key \"metrics\" must be a list of metric names (from {})", src.where("metrics"));
    c.metrics.clear();
    std::vector<std::string> known;
    for (const auto& [n, _] : metric_names()) known.push_back(n);
    for (const std::string& n : plugin_metric_names()) known.push_back(n);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = "metrics[" + std::to_string(i) + "]";
      HFT_CHECK(list[i].is_string(), "{} must be a metric name, got {} (from {})", path, clip(list[i].dump()), src.where(path));
      const std::string name = list[i].get<std::string>();
      if (name == "loss") continue;  // always computed, as HF's eval_loss
      if (plugin_metric_known(name)) {
        c.plugin_metrics.push_back(name);
        continue;
      }
      auto it = std::find_if(metric_names().begin(), metric_names().end(), [&](const auto& e) { return e.first == name; });
      HFT_CHECK(it != metric_names().end(), "{} (from {})", unknown_name_message("metric", name, known), src.where(path));
      c.metrics.push_back(it->second);
    }
  }

  if (tree.contains("stop_on_nonfinite")) {
    const json& v = tree.at("stop_on_nonfinite");
    HFT_CHECK(v.is_boolean(), "stop_on_nonfinite must be true or false, got {} (from {})", clip(v.dump()),
              src.where("stop_on_nonfinite"));
    c.stop_on_nonfinite = v.get<bool>();
  }

  if (tree.contains("fused")) c.fused = fusions_from_json(tree.at("fused"), src.where("fused"));

  if (tree.contains("peft") && !tree.at("peft").is_null())
    c.peft = lora_config_from_json(tree.at("peft"), src.where("peft"));
}

}  // namespace hftrain
