#include "hftrain/plugin/plugins.h"

#include "hftrain/core/error.h"
#include "hftrain/plugin/hftrain_plugin.h"
#include "hftrain/train/callback.h"
#include "hftrain/train/trainer_state.h"

#include <dlfcn.h>

#include <filesystem>
#include <map>
#include <set>

namespace hftrain {

using json = nlohmann::json;

namespace {

std::map<std::string, hftrain_make_metric>& metric_makers() {
  static std::map<std::string, hftrain_make_metric> m;
  return m;
}

// Events forwarded as hftrain_plugin.h says; the control bits set TrainerControl's flags.
class PluginCallback : public Callback {
 public:
  PluginCallback(std::string name, hftrain_callback cb) : name_(std::move(name)), cb_(cb) {}
  ~PluginCallback() override {
    if (cb_.destroy) cb_.destroy(cb_.self);
  }
  std::string name() const override { return name_; }
  void on_init_end(const Args&, State& s, Control& c) override { send("on_init_end", s, c); }
  void on_train_begin(const Args&, State& s, Control& c) override { send("on_train_begin", s, c); }
  void on_train_end(const Args&, State& s, Control& c) override { send("on_train_end", s, c); }
  void on_epoch_begin(const Args&, State& s, Control& c) override { send("on_epoch_begin", s, c); }
  void on_epoch_end(const Args&, State& s, Control& c) override { send("on_epoch_end", s, c); }
  void on_step_begin(const Args&, State& s, Control& c) override { send("on_step_begin", s, c); }
  void on_step_end(const Args&, State& s, Control& c) override { send("on_step_end", s, c); }
  void on_save(const Args&, State& s, Control& c) override { send("on_save", s, c); }
  void on_log(const Args&, State& s, Control& c, const Json& logs) override { send("on_log", s, c, logs); }
  void on_evaluate(const Args&, State& s, Control& c, const Json& m) override { send("on_evaluate", s, c, m); }
  void on_predict(const Args&, State& s, Control& c, const Json& m) override { send("on_predict", s, c, m); }

 private:
  void send(const char* event, State& s, Control& c, const Json& data = Json::object()) {
    const std::string state = trainer_state_to_json(s).dump(), text = data.dump(-1, ' ', false, Json::error_handler_t::replace);
    const int bits = cb_.event(cb_.self, event, state.c_str(), text.c_str());
    if (bits & HFTRAIN_CONTROL_STOP) c.should_training_stop = true;
    if (bits & HFTRAIN_CONTROL_SAVE) c.should_save = true;
    if (bits & HFTRAIN_CONTROL_EVALUATE) c.should_evaluate = true;
    if (bits & HFTRAIN_CONTROL_LOG) c.should_log = true;
  }
  std::string name_;
  hftrain_callback cb_;
};

class LoadedMetric : public PluginMetric {
 public:
  LoadedMetric(std::string name, hftrain_metric m) : name_(std::move(name)), m_(m) {}
  ~LoadedMetric() override {
    if (m_.destroy) m_.destroy(m_.self);
  }
  const std::string& name() const override { return name_; }
  void add(const int64_t* p, const int64_t* l, int64_t n) override { m_.add(m_.self, p, l, n); }
  void add_inputs(const int64_t* ids, int64_t n) override {
    if (m_.add_inputs) m_.add_inputs(m_.self, ids, n);
  }
  void add_loss(double loss) override {
    if (m_.add_loss) m_.add_loss(m_.self, loss);
  }
  double compute() override { return m_.compute(m_.self); }

 private:
  std::string name_;
  hftrain_metric m_;
};

// The plugin being registered, for the registry's callbacks' messages.
struct Host {
  std::string library, where;
};

void add_callback(void* host, const char* name, hftrain_make_callback make) {
  const Host& h = *static_cast<Host*>(host);
  HFT_CHECK(name && *name && make, "{}: registered a callback without a name or a make function (from {})", h.library,
            h.where);
  const std::string n = name;
  HFT_CHECK(!callback_registry().has(n), "{}: callback \"{}\" is already registered (from {})", h.library, n, h.where);
  callback_registry().add(n, [n, make](const json& options, const std::string& where) -> std::unique_ptr<Callback> {
    hftrain_callback cb{};
    char error[512] = {};
    const std::string text = options.dump();
    HFT_CHECK(make(text.c_str(), &cb, error, sizeof error) == 0 && cb.event,
              "callback {}: {} (from {})", n, error[0] ? error : "its plugin refused the options", where);
    return std::make_unique<PluginCallback>(n, cb);
  });
}

void add_metric(void* host, const char* name, hftrain_make_metric make) {
  const Host& h = *static_cast<Host*>(host);
  HFT_CHECK(name && *name && make, "{}: registered a metric without a name or a make function (from {})", h.library,
            h.where);
  HFT_CHECK(!metric_makers().count(name), "{}: metric \"{}\" is already registered (from {})", h.library, name, h.where);
  metric_makers().emplace(name, make);
}

}  // namespace

void plugins_load(const std::vector<std::string>& paths, const std::string& where) {
  static std::set<std::string> loaded;
  for (const std::string& path : paths) {
    std::error_code ec;
    const std::string key = std::filesystem::weakly_canonical(path, ec).string();
    if (loaded.count(key)) continue;
    HFT_CHECK(std::filesystem::is_regular_file(path, ec), "plugin {} does not exist (from {})", path, where);
    void* lib = ::dlopen(path.find('/') == std::string::npos ? ("./" + path).c_str() : path.c_str(), RTLD_NOW | RTLD_LOCAL);
    HFT_CHECK(lib, "plugin {} could not be loaded: {} (from {})", path, ::dlerror(), where);
    auto reg = reinterpret_cast<hftrain_plugin_register_fn>(::dlsym(lib, "hftrain_plugin_register"));
    HFT_CHECK(reg, "plugin {} has no hftrain_plugin_register: it is not an hftrain plugin (from {})", path, where);
    Host host{path, where};
    const hftrain_registry registry{&host, &add_callback, &add_metric};
    HFT_CHECK(reg(&registry, HFTRAIN_PLUGIN_ABI) == 0,
              "plugin {} refused to register: it was built for another plugin ABI than hftrain's {} (from {})", path,
              HFTRAIN_PLUGIN_ABI, where);
    loaded.insert(key);  // the library stays loaded: its code backs the registered names
  }
}

bool plugin_metric_known(const std::string& name) { return metric_makers().count(name) > 0; }

std::vector<std::string> plugin_metric_names() {
  std::vector<std::string> out;
  for (const auto& [n, _] : metric_makers()) out.push_back(n);
  return out;
}

std::unique_ptr<PluginMetric> plugin_metric_create(const std::string& name) {
  hftrain_metric m{};
  char error[512] = {};
  HFT_CHECK(metric_makers().at(name)("{}", &m, error, sizeof error) == 0 && m.add && m.compute,
            "metric {}: {}", name, error[0] ? error : "its plugin could not make one");
  return std::make_unique<LoadedMetric>(name, m);
}

}  // namespace hftrain
