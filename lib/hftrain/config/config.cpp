#include "hftrain/config/config.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <regex>

namespace hftrain {

using json = nlohmann::json;

std::string ConfigSource::where(const std::string& path) const {
  auto it = origin.find(path);
  return it == origin.end() ? "default" : it->second;
}

namespace {

// ---- YAML -> JSON tree, YAML 1.2 core schema for plain scalars -------------------------

json yaml_scalar(const std::string& s, bool plain) {
  if (!plain) return s;
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, kInt)) {
    try {
      return std::stoll(s);
    } catch (const std::out_of_range&) {
      return std::stod(s);
    }
  }
  if (std::regex_match(s, kFloat)) return std::stod(s);
  if (s == ".inf" || s == "+.inf") return INFINITY;
  if (s == "-.inf") return -INFINITY;
  if (s == ".nan") return NAN;
  return s;
}

json yaml_to_json(const YAML::Node& node, const std::string& path, const std::string& file,
                  std::map<std::string, std::string>& origin) {
  origin[path] = file + ":" + std::to_string(node.Mark().line + 1);
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return yaml_scalar(node.Scalar(), node.Tag() != "!");
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (size_t i = 0; i < node.size(); ++i)
        out.push_back(yaml_to_json(node[i], path + "[" + std::to_string(i) + "]", file, origin));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        std::string key = kv.first.as<std::string>();
        std::string sub = path.empty() ? key : path + "." + key;
        origin[sub] = file + ":" + std::to_string(kv.first.Mark().line + 1);
        out[key] = yaml_to_json(kv.second, sub, file, origin);
        origin[sub] = file + ":" + std::to_string(kv.first.Mark().line + 1);
      }
      return out;
    }
  }
  return nullptr;
}

void note_origin(const json& j, const std::string& path, const std::string& name,
                 std::map<std::string, std::string>& origin) {
  origin[path] = name;
  if (j.is_object())
    for (const auto& [k, v] : j.items()) note_origin(v, path.empty() ? k : path + "." + k, name, origin);
}

// Later values replace earlier ones key by key; objects merge recursively. `model.config`
// is an HF config dict and also merges key by key.
void merge_into(json& dst, const json& src) {
  for (const auto& [k, v] : src.items()) {
    if (v.is_object() && dst.contains(k) && dst[k].is_object())
      merge_into(dst[k], v);
    else
      dst[k] = v;
  }
}

void merge_yaml(ConfigSource& src, const std::string& text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}:{}: invalid YAML: {}", name, e.mark.line + 1, e.msg);
  }
  if (root.IsNull()) return;
  HFT_CHECK(root.IsMap(), "{}: the config must be a mapping of keys to values", name);
  std::map<std::string, std::string> origin;
  json tree = yaml_to_json(root, "", name, origin);
  origin.erase("");
  merge_into(src.tree, tree);
  for (auto& [k, v] : origin) src.origin[k] = v;
}

// ---- typed reading ---------------------------------------------------------------------

std::string show(const json& v) { return v.dump(); }

// One mapping of the config: typed fields by name, and an error for any other key.
class Section {
 public:
  Section(const ConfigSource& src, const json& obj, std::string prefix)
      : src_(src), obj_(obj), prefix_(std::move(prefix)) {
    HFT_CHECK(obj_.is_object() || obj_.is_null(), "key \"{}\" must be a mapping, got {} (from {})",
              prefix_, show(obj_), src_.where(prefix_));
  }

  std::string path(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  std::string where(const std::string& key) const { return src_.where(path(key)); }

  [[noreturn]] void bad(const std::string& key, const json& v, const std::string& expected) const {
    fail("key \"{}\" must be {}, got {} (from {})", path(key), expected, show(v), where(key));
  }

  // `handler(value)` runs when the key is present and not null (null means "default").
  Section& on(const std::string& key, std::function<void(const json&)> handler) {
    known_.push_back(key);
    if (obj_.is_object() && obj_.contains(key) && !obj_.at(key).is_null()) handler(obj_.at(key));
    return *this;
  }
  Section& field(const std::string& key, int64_t& out) {
    return on(key, [&, key](const json& v) {
      if (v.is_number_integer()) out = v.get<int64_t>();
      else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) out = static_cast<int64_t>(v.get<double>());
      else bad(key, v, "an integer");
    });
  }
  Section& field(const std::string& key, double& out) {
    return on(key, [&, key](const json& v) {
      if (!v.is_number()) bad(key, v, "a number");
      out = v.get<double>();
    });
  }
  Section& field(const std::string& key, bool& out) {
    return on(key, [&, key](const json& v) {
      if (!v.is_boolean()) bad(key, v, "true or false");
      out = v.get<bool>();
    });
  }
  Section& field(const std::string& key, std::string& out) {
    return on(key, [&, key](const json& v) {
      if (!v.is_string()) bad(key, v, "a string");
      out = v.get<std::string>();
    });
  }
  template <typename T>
  Section& field(const std::string& key, std::optional<T>& out) {
    known_.push_back(key);
    if (obj_.is_object() && obj_.contains(key) && !obj_.at(key).is_null()) {
      T value{};
      const json single{{key, obj_.at(key)}};  // outlives `one`, which keeps a reference
      Section one(src_, single, prefix_);
      one.field(key, value);
      out = value;
    }
    return *this;
  }
  template <typename E>
  Section& choice(const std::string& key, E& out, const NameTable<E>& table) {
    return on(key, [&, key](const json& v) {
      std::vector<std::string> names;
      for (const auto& [n, e] : table) {
        if (v.is_string() && v.get<std::string>() == n) { out = e; return; }
        names.push_back(n);
      }
      if (!v.is_string()) bad(key, v, "one of " + join(names, ", "));
      fail("{} (from {})", unknown_name_message("value for \"" + path(key) + "\"", v.get<std::string>(), names), where(key));
    });
  }
  Section sub(const std::string& key) {
    known_.push_back(key);
    static const json kNull;
    return Section(src_, obj_.is_object() && obj_.contains(key) ? obj_.at(key) : kNull, path(key));
  }
  bool has(const std::string& key) const { return obj_.is_object() && obj_.contains(key) && !obj_.at(key).is_null(); }

  // Every key present must have been declared.
  void finish() const {
    if (!obj_.is_object()) return;
    for (const auto& [k, v] : obj_.items()) {
      if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
      std::string msg = "unknown key \"" + path(k) + "\"";
      std::string near = nearest_name(k, known_);
      if (!near.empty()) msg += "; did you mean \"" + path(near) + "\"?";
      fail("{} (from {})", msg, where(k));
    }
  }

 private:
  const ConfigSource& src_;
  const json& obj_;
  std::string prefix_;
  std::vector<std::string> known_;
};

const NameTable<DatasetFormat> kFormats = {{"generated", DatasetFormat::kGenerated}, {"text", DatasetFormat::kText}};

void read_dataset(Section s, DatasetOptions& d) {
  s.choice("format", d.format, kFormats).field("path", d.path).field("num_bytes", d.num_bytes).field("seed", d.seed);
  s.finish();
  if (d.format == DatasetFormat::kText) {
    HFT_CHECK(!d.path.empty(), "key \"{}\" is required for format text (from {})", s.path("path"), s.where("format"));
    std::error_code ec;
    HFT_CHECK(std::filesystem::is_regular_file(d.path, ec), "data file not found: {} (key \"{}\", from {})", d.path,
              s.path("path"), s.where("path"));
  } else {
    HFT_CHECK(d.num_bytes > 0, "key \"{}\" must be > 0, got {} (from {})", s.path("num_bytes"), d.num_bytes,
              s.where("num_bytes"));
  }
}

// Range checks: one line naming the key, the value and where it came from.
struct Checker {
  const ConfigSource& src;
  template <typename T>
  void operator()(bool ok, const std::string& key, T value, const char* rule) const {
    if (!ok) fail("{} must be {}, got {} (from {})", key, rule, value, src.where(key));
  }
};

}  // namespace

void config_merge_file(ConfigSource& src, const std::string& path) {
  std::error_code ec;
  HFT_CHECK(std::filesystem::is_regular_file(path, ec), "config file not found: {}", path);
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".json") {
    config_merge_json(src, io::read_json_file(path), path);
  } else {
    HFT_CHECK(ext == ".yaml" || ext == ".yml", "{}: config files are .yaml, .yml or .json", path);
    merge_yaml(src, io::read_file(path), path);
  }
}

void config_merge_json(ConfigSource& src, const json& tree, const std::string& name) {
  HFT_CHECK(tree.is_object(), "{}: the config must be a JSON object", name);
  merge_into(src.tree, tree);
  for (const auto& [k, v] : tree.items()) note_origin(v, k, name, src.origin);
}

void config_merge_text(ConfigSource& src, const std::string& text, const std::string& name) {
  merge_yaml(src, text, name);
}

void config_merge_set(ConfigSource& src, const std::string& assignment) {
  size_t eq = assignment.find('=');
  HFT_CHECK(eq != std::string::npos && eq > 0, "--set expects key=value, got \"{}\"", assignment);
  std::string key = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  json value;
  try {
    YAML::Node n = YAML::Load(text);
    value = n.IsScalar() ? yaml_scalar(n.Scalar(), n.Tag() != "!") : yaml_to_json(n, key, "--set", src.origin);
  } catch (const YAML::Exception& e) {
    fail("--set {}: invalid value: {}", assignment, e.msg);
  }
  json* node = &src.tree;
  size_t start = 0;
  for (;;) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    HFT_CHECK(!part.empty(), "--set {}: empty key segment", assignment);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      break;
    }
    if (!node->contains(part) || !(*node)[part].is_object()) (*node)[part] = json::object();
    node = &(*node)[part];
    start = dot + 1;
  }
  note_origin(value, key, "--set " + key, src.origin);
}

Config config_resolve(const ConfigSource& src) {
  Config c;
  TrainingArguments& a = c.args;
  Section top(src, src.tree, "");
  top.field("output_dir", a.output_dir)
      .field("overwrite_output_dir", a.overwrite_output_dir)
      .field("run_name", a.run_name)
      .field("num_train_epochs", a.num_train_epochs)
      .field("max_steps", a.max_steps)
      .field("per_device_train_batch_size", a.per_device_train_batch_size)
      .field("per_device_eval_batch_size", a.per_device_eval_batch_size)
      .field("gradient_accumulation_steps", a.gradient_accumulation_steps)
      .field("dataloader_drop_last", a.dataloader_drop_last)
      .choice("optim", a.optim, optimizer_names())
      .field("learning_rate", a.learning_rate)
      .field("weight_decay", a.weight_decay)
      .field("adam_beta1", a.adam_beta1)
      .field("adam_beta2", a.adam_beta2)
      .field("adam_epsilon", a.adam_epsilon)
      .field("max_grad_norm", a.max_grad_norm)
      .choice("lr_scheduler_type", a.lr_scheduler_type, scheduler_type_names())
      .field("warmup_steps", a.warmup_steps)
      .field("warmup_ratio", a.warmup_ratio)
      .choice("logging_strategy", a.logging_strategy, interval_strategy_names())
      .field("logging_steps", a.logging_steps)
      .field("logging_first_step", a.logging_first_step)
      .choice("eval_strategy", a.eval_strategy, interval_strategy_names())
      .field("eval_steps", a.eval_steps)
      .choice("save_strategy", a.save_strategy, interval_strategy_names())
      .field("save_steps", a.save_steps)
      .field("save_total_limit", a.save_total_limit)
      .field("seed", a.seed)
      .field("data_seed", a.data_seed)
      .field("use_cpu", a.use_cpu)
      .on("resume_from_checkpoint", [&](const json& v) {
        if (v.is_boolean()) {
          if (v.get<bool>()) a.resume_from_checkpoint = "true";
        } else if (v.is_string()) {
          a.resume_from_checkpoint = v.get<std::string>();
        } else {
          top.bad("resume_from_checkpoint", v, "a checkpoint path or true");
        }
      });

  Section model = top.sub("model");
  model.field("type", c.model.type).field("pretrained", c.model.pretrained).on("config", [&](const json& v) {
    if (!v.is_object()) model.bad("config", v, "a mapping of HF config.json keys");
    c.model.config = v;
  });
  model.finish();

  Section data = top.sub("data");
  data.field("tokenizer", c.data.tokenizer)
      .field("block_size", c.data.block_size)
      .field("validation_split_percentage", c.data.validation_split_percentage);
  read_dataset(data.sub("train"), c.data.train);
  if (data.has("eval")) {
    c.data.eval.emplace();
    read_dataset(data.sub("eval"), *c.data.eval);
  } else {
    data.sub("eval");
  }
  data.finish();
  top.finish();

  // Ranges. HF accepts some of these silently (a negative learning rate); hftrain refuses
  // them, because a run that cannot be meant is better stopped before it starts.
  Checker check{src};
  check(std::isfinite(a.learning_rate) && a.learning_rate >= 0, "learning_rate", a.learning_rate, ">= 0");
  check(a.weight_decay >= 0, "weight_decay", a.weight_decay, ">= 0");
  check(a.adam_beta1 >= 0 && a.adam_beta1 < 1, "adam_beta1", a.adam_beta1, "in [0, 1)");
  check(a.adam_beta2 >= 0 && a.adam_beta2 < 1, "adam_beta2", a.adam_beta2, "in [0, 1)");
  check(a.adam_epsilon >= 0, "adam_epsilon", a.adam_epsilon, ">= 0");
  check(a.num_train_epochs >= 0, "num_train_epochs", a.num_train_epochs, ">= 0");
  check(a.max_steps != 0 && a.max_steps >= -1, "max_steps", a.max_steps, "> 0, or -1 to use num_train_epochs");
  check(a.per_device_train_batch_size >= 1, "per_device_train_batch_size", a.per_device_train_batch_size, ">= 1");
  check(a.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", a.per_device_eval_batch_size, ">= 1");
  check(a.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", a.gradient_accumulation_steps, ">= 1");
  check(a.warmup_steps >= 0, "warmup_steps", a.warmup_steps, ">= 0");
  check(a.warmup_ratio >= 0 && a.warmup_ratio <= 1, "warmup_ratio", a.warmup_ratio, "in [0, 1]");
  check(a.logging_steps > 0, "logging_steps", a.logging_steps, "> 0");
  check(a.save_steps > 0, "save_steps", a.save_steps, "> 0");
  if (a.eval_steps) check(*a.eval_steps > 0, "eval_steps", *a.eval_steps, "> 0");
  if (a.save_total_limit) check(*a.save_total_limit >= 1, "save_total_limit", *a.save_total_limit, ">= 1");
  // HF: ratios below 1 must be... "logging_steps must be an integer if bigger than 1"
  for (auto [key, v] : {std::pair<const char*, double>{"logging_steps", a.logging_steps}, {"save_steps", a.save_steps},
                        {"eval_steps", a.eval_steps.value_or(1)}})
    check(v < 1 || std::floor(v) == v, key, v, "an integer when > 1 (a value below 1 is a ratio of max_steps)");
  check(c.data.block_size >= 2, "data.block_size", c.data.block_size, ">= 2");
  check(c.data.validation_split_percentage >= 0 && c.data.validation_split_percentage < 100,
        "data.validation_split_percentage", c.data.validation_split_percentage, "in [0, 100)");
  HFT_CHECK(a.max_steps > 0 || a.num_train_epochs > 0,
            "num_train_epochs is 0 and max_steps is not set: nothing to train (from {})", src.where("num_train_epochs"));
  HFT_CHECK(!a.output_dir.empty(), "output_dir must not be empty (from {})", src.where("output_dir"));
  bool has_eval = c.data.eval.has_value() || c.data.validation_split_percentage > 0;
  // HF: "You have set args.eval_strategy to steps but you didn't pass an eval_dataset".
  HFT_CHECK(a.eval_strategy == IntervalStrategy::kNo || has_eval,
            "eval_strategy is {} but there is no eval dataset: set data.eval or data.validation_split_percentage "
            "(from {})",
            to_string(a.eval_strategy), src.where("eval_strategy"));
  if (a.run_name.empty()) a.run_name = a.output_dir;
  return c;
}

json training_args_to_json(const TrainingArguments& a) {
  auto opt = [](const auto& o) -> json { return o ? json(*o) : json(nullptr); };
  // Integral step counts print as ints, ratios as floats, as HF's to_dict shows them.
  auto steps = [](double v) -> json { return v >= 1 ? json(static_cast<int64_t>(v)) : json(v); };
  return json{
      {"output_dir", a.output_dir},
      {"overwrite_output_dir", a.overwrite_output_dir},
      {"run_name", a.run_name},
      {"num_train_epochs", a.num_train_epochs},
      {"max_steps", a.max_steps},
      {"per_device_train_batch_size", a.per_device_train_batch_size},
      {"per_device_eval_batch_size", a.per_device_eval_batch_size},
      {"gradient_accumulation_steps", a.gradient_accumulation_steps},
      {"dataloader_drop_last", a.dataloader_drop_last},
      {"optim", to_string(a.optim)},
      {"learning_rate", a.learning_rate},
      {"weight_decay", a.weight_decay},
      {"adam_beta1", a.adam_beta1},
      {"adam_beta2", a.adam_beta2},
      {"adam_epsilon", a.adam_epsilon},
      {"max_grad_norm", a.max_grad_norm},
      {"lr_scheduler_type", to_string(a.lr_scheduler_type)},
      {"warmup_steps", a.warmup_steps},
      {"warmup_ratio", a.warmup_ratio},
      {"logging_strategy", to_string(a.logging_strategy)},
      {"logging_steps", steps(a.logging_steps)},
      {"logging_first_step", a.logging_first_step},
      {"eval_strategy", to_string(a.eval_strategy)},
      {"eval_steps", a.eval_steps ? steps(*a.eval_steps) : json(nullptr)},
      {"save_strategy", to_string(a.save_strategy)},
      {"save_steps", steps(a.save_steps)},
      {"save_total_limit", opt(a.save_total_limit)},
      {"seed", a.seed},
      {"data_seed", opt(a.data_seed)},
      {"resume_from_checkpoint", opt(a.resume_from_checkpoint)},
      {"use_cpu", a.use_cpu},
  };
}

json config_to_json(const Config& c) {
  json out = training_args_to_json(c.args);
  auto dataset = [](const DatasetOptions& d) {
    json j{{"format", d.format == DatasetFormat::kText ? "text" : "generated"}};
    if (d.format == DatasetFormat::kText) j["path"] = d.path;
    else j["num_bytes"] = d.num_bytes, j["seed"] = d.seed;
    return j;
  };
  out["model"] = json{{"type", c.model.type}, {"config", c.model.config}};
  if (!c.model.pretrained.empty()) out["model"]["pretrained"] = c.model.pretrained;
  out["data"] = json{{"tokenizer", c.data.tokenizer},
                     {"block_size", c.data.block_size},
                     {"validation_split_percentage", c.data.validation_split_percentage},
                     {"train", dataset(c.data.train)}};
  if (c.data.eval) out["data"]["eval"] = dataset(*c.data.eval);
  return out;
}

namespace {
void emit_yaml(YAML::Emitter& e, const json& j) {
  if (j.is_object()) {
    e << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      e << YAML::Key << k << YAML::Value;
      emit_yaml(e, v);
    }
    e << YAML::EndMap;
  } else if (j.is_array()) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto& v : j) emit_yaml(e, v);
    e << YAML::EndSeq;
  } else if (j.is_null()) {
    e << YAML::Null;
  } else if (j.is_string()) {
    // Quote strings that would read back as another type.
    const std::string s = j.get<std::string>();
    if (!yaml_scalar(s, true).is_string()) e << YAML::DoubleQuoted << s;
    else e << s;
  } else {
    e << j.dump();  // numbers and booleans in JSON's shortest round-trip form
  }
}
}  // namespace

std::string json_to_yaml(const json& j) {
  YAML::Emitter e;
  emit_yaml(e, j);
  return std::string(e.c_str()) + "\n";
}

}  // namespace hftrain
