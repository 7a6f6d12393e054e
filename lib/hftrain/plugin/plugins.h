// Loading plugins (hftrain_plugin.h): their callbacks join callback_registry() under the names
// they give, their metrics the registry below, for `callbacks:` and `metrics:` to name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hftrain {

// dlopens each library (once per path) and runs its hftrain_plugin_register; a missing file,
// a library without the entry point, another ABI version, a refusal or a name already taken
// is a user error naming the library and `where`.
void plugins_load(const std::vector<std::string>& paths, const std::string& where);

// A plugin metric's instance (its make() with options "{}"), freed through the plugin.
class PluginMetric {
 public:
  virtual ~PluginMetric() = default;
  virtual const std::string& name() const = 0;
  virtual void add(const int64_t* predictions, const int64_t* labels, int64_t count) = 0;
  virtual void add_inputs(const int64_t* input_ids, int64_t count) = 0;  // no-ops for a metric without them
  virtual void add_loss(double loss) = 0;
  virtual double compute() = 0;
};
bool plugin_metric_known(const std::string& name);
std::vector<std::string> plugin_metric_names();
std::unique_ptr<PluginMetric> plugin_metric_create(const std::string& name);

}  // namespace hftrain
