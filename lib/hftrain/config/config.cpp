#include "hftrain/config/config.h"

#include "hftrain/config/config_keys.h"

#include "hftrain/config/fields.h"
#include "hftrain/config/json_value.h"

#include "hftrain/core/error.h"
#include "hftrain/core/log.h"
#include "hftrain/core/strings.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/optim/optimizer_factory.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
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

// `where` names the value in errors (a number a double cannot hold, such as 1e999 or
// 1e-320); empty: such a number stays a string (for deciding how to print one).
json yaml_scalar(const std::string& s, bool plain, const std::string& where) {
  if (!plain) return s;
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // No number is this long; std::regex recurses per character, and a megabyte would overflow
  // the stack.
  if (s.size() > 512) return s;
  const bool is_int = std::regex_match(s, kInt);
  if (is_int || std::regex_match(s, kFloat)) {
    if (is_int) {
      errno = 0;
      const long long v = std::strtoll(s.c_str(), nullptr, 10);
      if (errno == 0) return static_cast<int64_t>(v);
    }
    errno = 0;
    const double d = std::strtod(s.c_str(), nullptr);
    if (errno == 0) return d;
    HFT_CHECK(where.empty(), "{}: the number {} is out of range for a 64-bit float", where, clip(s));
    return s;
  }
  if (s == ".inf" || s == "+.inf") return INFINITY;
  if (s == "-.inf") return -INFINITY;
  if (s == ".nan") return NAN;
  return s;
}

// Aliases make a YAML document a graph: `x: &a [*a]` refers to itself and a few lines of
// nested aliases name billions of nodes. The expansion is bounded in depth and in size, far
// beyond any config, so that such a file is refused instead of exhausting the stack or memory.
struct YamlBudget {
  static constexpr int kMaxDepth = 64;
  static constexpr int64_t kMaxNodes = 1000000;
  int64_t nodes = 0;
};

json yaml_to_json(const YAML::Node& node, const std::string& path, const std::string& file,
                  std::map<std::string, std::string>& origin, YamlBudget& budget, int depth = 0) {
  const std::string at = file + ":" + std::to_string(node.Mark().line + 1);
  HFT_CHECK(depth <= YamlBudget::kMaxDepth && ++budget.nodes <= YamlBudget::kMaxNodes,
            "{}: the YAML nests deeper than {} levels or expands to more than {} values (an alias that refers to "
            "itself, or aliases of aliases)",
            at, YamlBudget::kMaxDepth, YamlBudget::kMaxNodes);
  origin[path] = at;
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return yaml_scalar(node.Scalar(), node.Tag() != "!", at + " (key \"" + path + "\")");
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (size_t i = 0; i < node.size(); ++i)
        out.push_back(yaml_to_json(node[i], path + "[" + std::to_string(i) + "]", file, origin, budget, depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        HFT_CHECK(kv.first.IsScalar(), "{}:{}: a key must be a plain string (under \"{}\")", file,
                  kv.first.Mark().line + 1, path);
        std::string key = kv.first.Scalar();
        std::string sub = path.empty() ? key : path + "." + key;
        if (out.contains(key))
          fail("{}:{}: duplicate key \"{}\" (first at {})", file, kv.first.Mark().line + 1, sub, origin[sub]);
        origin[sub] = file + ":" + std::to_string(kv.first.Mark().line + 1);
        out[key] = yaml_to_json(kv.second, sub, file, origin, budget, depth + 1);
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
  YamlBudget budget;
  json tree = yaml_to_json(root, "", name, origin, budget);
  origin.erase("");
  merge_into(src.tree, tree);
  for (auto& [k, v] : origin) src.origin[k] = v;
}

// ---- typed reading ---------------------------------------------------------------------

std::string show(const json& v) { return clip(v.dump()); }

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
  template <typename T>
  Section& field(const std::string& key, T& out) {
    return on(key, [&, key](const json& v) {
      read_json_value(v, out, [&](const std::string& expected) { bad(key, v, expected); });
    });
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

const NameTable<DatasetFormat> kFormats = {
    {"generated", DatasetFormat::kGenerated}, {"text", DatasetFormat::kText}, {"jsonl", DatasetFormat::kJsonl},
    {"csv", DatasetFormat::kCsv},             {"tsv", DatasetFormat::kTsv},   {"tokens", DatasetFormat::kTokens}};
const NameTable<ModelTaskName> kTasks = {{"causal_lm", ModelTaskName::kCausalLM},
                                         {"masked_lm", ModelTaskName::kMaskedLM},
                                         {"sequence_classification", ModelTaskName::kSequenceClassification},
                                         {"token_classification", ModelTaskName::kTokenClassification}};
const NameTable<SampleBy> kSampleBy = {
    {"line", SampleBy::kLine}, {"paragraph", SampleBy::kParagraph}, {"document", SampleBy::kDocument}};
const NameTable<TokenDtype> kTokenDtypes = {
    {"uint8", TokenDtype::kUint8}, {"uint16", TokenDtype::kUint16}, {"uint32", TokenDtype::kUint32}};

void read_dataset(Section s, DatasetOptions& d) {
  s.choice("format", d.format, kFormats).field("path", d.path).field("num_bytes", d.num_bytes).field("seed", d.seed);
  s.choice("dtype", d.dtype, kTokenDtypes).field("offset", d.offset).field("num_tokens", d.num_tokens);
  s.field("text_field", d.text_field).field("label_field", d.label_field).choice("sample_by", d.sample_by, kSampleBy);
  s.field("keep_linebreaks", d.keep_linebreaks).field("prompt_field", d.prompt_field);
  s.finish();
  HFT_CHECK(d.prompt_field.empty() || d.format == DatasetFormat::kJsonl || d.format == DatasetFormat::kCsv ||
                d.format == DatasetFormat::kTsv,
            "key \"{}\" needs a jsonl, csv or tsv dataset (from {})", s.path("prompt_field"), s.where("prompt_field"));
  if (d.format != DatasetFormat::kGenerated) {
    HFT_CHECK(!d.path.empty(), "key \"{}\" is required for this data format (from {})", s.path("path"), s.where("format"));
    std::error_code ec;
    // A glob is expanded when the data is read; a plain path must exist now.
    const bool exists = d.format == DatasetFormat::kTokens ? std::filesystem::is_regular_file(d.path, ec)
                                                           : std::filesystem::exists(d.path, ec);
    HFT_CHECK(exists || (d.format != DatasetFormat::kTokens && d.path.find_first_of("*?[") != std::string::npos),
              "data file not found: {} (key \"{}\", from {})", d.path, s.path("path"), s.where("path"));
  } else {
    HFT_CHECK(d.num_bytes > 0, "key \"{}\" must be > 0, got {} (from {})", s.path("num_bytes"), d.num_bytes,
              s.where("num_bytes"));
  }
}

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
    YamlBudget budget;
    value = n.IsScalar() ? yaml_scalar(n.Scalar(), n.Tag() != "!", "--set " + key)
                         : yaml_to_json(n, key, "--set", src.origin, budget);
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
  static const json kEmpty = json::object();
  const json& tree = src.tree.is_object() ? src.tree : kEmpty;
  static const json kNull;
  // Plugins first: their callbacks and metrics are names the sections below may use.
  read_plugins(src, tree, c);
  Section model(src, tree.contains("model") ? tree.at("model") : kNull, "model");
  model.choice("task", c.model.task, kTasks);
  model.field("type", c.model.type).field("pretrained", c.model.pretrained).on("config", [&](const json& v) {
    if (!v.is_object()) model.bad("config", v, "a mapping of HF config.json keys");
    c.model.config = v;
  });
  model.on("torch_dtype", [&](const json& v) {
    if (!v.is_string() || (v != "float32" && v != "bfloat16" && v != "float16"))
      model.bad("torch_dtype", v, "one of float32, bfloat16, float16");
    c.model.torch_dtype = v.get<std::string>();
  });
  model.on("max_shard_size", [&](const json& v) {
    c.model.max_shard_size = parse_file_size(v, "model.max_shard_size (from " + src.where("model.max_shard_size") + ")");
  });
  model.finish();

  Section data(src, tree.contains("data") ? tree.at("data") : kNull, "data");
  data.field("tokenizer", c.data.tokenizer)
      .field("block_size", c.data.block_size)
      .field("validation_split_percentage", c.data.validation_split_percentage)
      .field("cache_dir", c.data.cache_dir)
      .field("overwrite_cache", c.data.overwrite_cache)
      .field("preprocessing_num_workers", c.data.preprocessing_num_workers)
      .field("group_texts", c.data.group_texts)
      .field("packing", c.data.packing)
      .field("padding_free", c.data.packing)  // TRL's name for the same
      .field("pad_to_max_length", c.data.pad_to_max_length)
      .field("pad_to_multiple_of", c.data.pad_to_multiple_of)
      .field("mlm_probability", c.data.mlm_probability);
  read_dataset(data.sub("train"), c.data.train);
  const json& eval_tree = data.has("eval") ? tree.at("data").at("eval") : kNull;
  // A mapping of mappings (every dataset key holds a scalar) names several eval sets.
  const bool named = eval_tree.is_object() && !eval_tree.empty() &&
                     std::all_of(eval_tree.begin(), eval_tree.end(), [](const json& v) { return v.is_object(); });
  if (named) {
    Section evals = data.sub("eval");
    for (const auto& [name, v] : eval_tree.items()) {
      HFT_CHECK(!name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
                                     std::string::npos,
                "data.eval: the name \"{}\" must be letters, digits, _ or - (it becomes eval_<name>_loss) (from {})",
                clip(name), evals.where(name));
      c.data.named_evals.emplace_back(name, DatasetOptions{});
      read_dataset(evals.sub(name), c.data.named_evals.back().second);
    }
    evals.finish();
  } else if (data.has("eval")) {
    c.data.eval.emplace();
    read_dataset(data.sub("eval"), *c.data.eval);
  } else {
    data.sub("eval");
  }
  data.finish();
  // transformers users load the tokenizer from the checkpoint they fine-tune; so does hftrain
  // when data.tokenizer is not given and the pretrained directory has tokenizer files.
  if (!src.origin.count("data.tokenizer") && !c.model.pretrained.empty()) {
    std::error_code ec;
    const std::filesystem::path dir(c.model.pretrained);
    for (const char* f : {"tokenizer.json", "vocab.json", "vocab.txt"})
      if (std::filesystem::exists(dir / f, ec)) {
        c.data.tokenizer = c.model.pretrained;
        break;
      }
  }
  HFT_CHECK(c.data.mlm_probability > 0 && c.data.mlm_probability < 1, "data.mlm_probability must be in (0, 1), got {} (from {})",
            c.data.mlm_probability, src.where("data.mlm_probability"));
  HFT_CHECK(c.data.pad_to_multiple_of >= 0, "data.pad_to_multiple_of must be >= 0, got {} (from {})",
            c.data.pad_to_multiple_of, src.where("data.pad_to_multiple_of"));
  HFT_CHECK(c.data.preprocessing_num_workers >= 0, "data.preprocessing_num_workers must be >= 0, got {} (from {})",
            c.data.preprocessing_num_workers, src.where("data.preprocessing_num_workers"));
  HFT_CHECK(c.data.block_size >= 2, "data.block_size must be >= 2, got {} (from {})", c.data.block_size,
            src.where("data.block_size"));
  HFT_CHECK(c.data.validation_split_percentage >= 0 && c.data.validation_split_percentage < 100,
            "data.validation_split_percentage must be in [0, 100), got {} (from {})",
            c.data.validation_split_percentage, src.where("data.validation_split_percentage"));

  read_own_keys(src, tree, c);

  const bool has_eval = c.data.has_eval() || c.data.validation_split_percentage > 0;
  std::vector<std::string> not_arguments = own_top_level_keys();
  not_arguments.insert(not_arguments.end(), {"model", "data"});
  c.args = training_args_read(tree, not_arguments, [&](const std::string& key) { return src.where(key); }, has_eval);
  // Several eval sets report eval_<name>_*: a best-model metric must say which set's.
  if (!c.data.named_evals.empty() && c.args.metric_for_best_model) {
    std::string m = *c.args.metric_for_best_model;
    if (m.rfind("eval_", 0) != 0) m = "eval_" + m;
    bool named = false;
    for (const auto& [name, d] : c.data.named_evals) named = named || m.rfind("eval_" + name + "_", 0) == 0;
    HFT_CHECK(named,
              "metric_for_best_model is {}, but with several eval datasets the metrics are eval_<name>_...: name one, "
              "e.g. eval_{}_loss (from {})",
              m, c.data.named_evals.front().first, src.where("metric_for_best_model"));
  }
  const std::vector<std::string> always = default_callbacks(c.args);
  for (const CallbackSpec& cb : c.callbacks)
    HFT_CHECK(std::find(always.begin(), always.end(), cb.name) == always.end(),
              "callback {} is one every run has already (from {}); list only others", cb.name, cb.where);
  // What needs the components' own rules: the optimizer this build has, the schedule's kwargs.
  optimizer_check(c.args);
  c.scheduler = scheduler_options_from_kwargs(c.args.lr_scheduler_type, 0, 0, c.args.lr_scheduler_kwargs,
                                              "lr_scheduler_kwargs (from " + src.where("lr_scheduler_kwargs") + ")");
  std::vector<std::string> given;
  for (const auto& [k, _] : c.args.lr_scheduler_kwargs.items()) given.push_back(k);
  const bool warmup = c.args.warmup_steps > 0 || c.args.warmup_ratio > 0;
  const std::string quirk = scheduler_quirk(c.args.lr_scheduler_type, given, warmup ? 1 : 0);
  if (!quirk.empty()) warn_line(quirk);
  return c;
}

json config_to_json(const Config& c) {
  json out = training_args_to_json(c.args);
  auto dataset = [](const DatasetOptions& d) {
    json j;
    for (const auto& [n, f] : kFormats)
      if (f == d.format) j["format"] = n;
    if (d.format == DatasetFormat::kGenerated) {
      j["num_bytes"] = d.num_bytes, j["seed"] = d.seed;
      return j;
    }
    j["path"] = d.path;
    if (d.format == DatasetFormat::kText) {
      for (const auto& [n, b] : kSampleBy)
        if (b == d.sample_by) j["sample_by"] = n;
      j["keep_linebreaks"] = d.keep_linebreaks;
    }
    if (d.format == DatasetFormat::kJsonl || d.format == DatasetFormat::kCsv || d.format == DatasetFormat::kTsv)
      j["text_field"] = d.text_field, j["label_field"] = d.label_field, j["prompt_field"] = d.prompt_field;
    if (d.format == DatasetFormat::kTokens) {
      for (const auto& [n, t] : kTokenDtypes)
        if (t == d.dtype) j["dtype"] = n;
      j["offset"] = d.offset, j["num_tokens"] = d.num_tokens;
    }
    return j;
  };
  out["model"] = json{{"type", c.model.type}, {"config", c.model.config}};
  for (const auto& [name, t] : kTasks)
    if (c.model.task == t) out["model"]["task"] = name;
  if (!c.model.pretrained.empty()) out["model"]["pretrained"] = c.model.pretrained;
  out["model"]["torch_dtype"] = c.model.torch_dtype;
  out["model"]["max_shard_size"] = c.model.max_shard_size;
  out["data"] = json{{"tokenizer", c.data.tokenizer},
                     {"block_size", c.data.block_size},
                     {"validation_split_percentage", c.data.validation_split_percentage},
                     {"overwrite_cache", c.data.overwrite_cache},
                     {"preprocessing_num_workers", c.data.preprocessing_num_workers},
                     {"group_texts", c.data.group_texts},
                     {"packing", c.data.packing},
                     {"pad_to_max_length", c.data.pad_to_max_length},
                     {"pad_to_multiple_of", c.data.pad_to_multiple_of},
                     {"mlm_probability", c.data.mlm_probability},
                     {"train", dataset(c.data.train)}};
  if (!c.data.cache_dir.empty()) out["data"]["cache_dir"] = c.data.cache_dir;
  if (c.data.eval) out["data"]["eval"] = dataset(*c.data.eval);
  for (const auto& [name, d] : c.data.named_evals) out["data"]["eval"][name] = dataset(d);
  out["stop_on_nonfinite"] = c.stop_on_nonfinite;
  out["fused"] = fusions_to_json(c.fused);
  if (c.peft) {
    // The keys as adapter_config.json has them (read back by lora_config_from_json).
    out["peft"] = c.peft->adapter_config();
    if (c.peft->save_merged) out["peft"]["save_merged"] = true;
  }
  out["metrics"] = json::array();
  for (Metric m : c.metrics)
    for (const auto& [n, e] : metric_names())
      if (e == m) out["metrics"].push_back(n);
  for (const std::string& n : c.plugin_metrics) out["metrics"].push_back(n);
  if (!c.plugins.empty()) out["plugins"] = c.plugins;
  if (!c.callbacks.empty()) {
    out["callbacks"] = json::array();
    for (const CallbackSpec& cb : c.callbacks) {
      json e = cb.options;
      e["name"] = cb.name;
      out["callbacks"].push_back(e);
    }
  }
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
    if (!yaml_scalar(s, true, "").is_string()) e << YAML::DoubleQuoted << s;
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

namespace {
void describe(std::string& out, const json& j, const std::string& path, int indent, const ConfigSource* src) {
  for (const auto& [k, v] : j.items()) {
    const std::string key = path.empty() ? k : path + "." + k;
    out += std::string(indent, ' ') + k + ":";
    if (v.is_object() && !v.empty()) {
      out += "\n";
      describe(out, v, key, indent + 2, src);
      continue;
    }
    YAML::Emitter e;
    e << YAML::Flow;
    emit_yaml(e, v);
    out += " " + std::string(e.c_str());
    if (src) {
      auto it = src->origin.find(key);
      if (it != src->origin.end()) out += "  # " + it->second;
    }
    out += "\n";
  }
}
}  // namespace

std::string config_describe(const Config& c, const ConfigSource* src) {
  std::string out;
  describe(out, config_to_json(c), "", 0, src);
  return out;
}

}  // namespace hftrain
