// hftrain's own top-level config keys, beside TrainingArguments and the model: / data:
// sections: plugins, callbacks, metrics, stop_on_nonfinite, fused, peft.
#pragma once

#include "hftrain/config/config.h"

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace hftrain {

// Their names, which are not TrainingArguments.
const std::vector<std::string>& own_top_level_keys();

// `plugins:`, loaded at once: their callbacks and metrics are names the rest may use.
void read_plugins(const ConfigSource& src, const nlohmann::json& tree, Config& c);
// callbacks, metrics, stop_on_nonfinite, fused and peft.
void read_own_keys(const ConfigSource& src, const nlohmann::json& tree, Config& c);

}  // namespace hftrain
