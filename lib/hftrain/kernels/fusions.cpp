#include "hftrain/kernels/fusions.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"

#include <nlohmann/json.hpp>

namespace hftrain {

namespace {

// Each switch by its config name.
struct Switch {
  const char* name;
  bool Fusions::*field;
};
const Switch kSwitches[] = {
    {"lm_head_loss", &Fusions::lm_head_loss},
    {"attention", &Fusions::attention},
    {"adamw", &Fusions::adamw},
    {"gelu", &Fusions::gelu},
    {"linear", &Fusions::linear},
    {"norm", &Fusions::norm},
    {"swiglu", &Fusions::swiglu},
};

thread_local bool t_loss_only = false;

}  // namespace

LossOnlyScope::LossOnlyScope() : previous_(t_loss_only) { t_loss_only = true; }
LossOnlyScope::~LossOnlyScope() { t_loss_only = previous_; }
bool loss_only() { return t_loss_only; }

Fusions& fusions() {
  static Fusions f;
  return f;
}

const std::vector<std::string>& fusion_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Switch& s : kSwitches) n.push_back(s.name);
    return n;
  }();
  return names;
}

Fusions fusions_from_json(const nlohmann::json& v, const std::string& where) {
  Fusions f;
  if (v.is_boolean()) {
    for (const Switch& s : kSwitches) f.*s.field = v.get<bool>();
    return f;
  }
  HFT_CHECK(v.is_object(), "fused must be true, false or a mapping of {} to true/false, got {} (from {})",
            join(fusion_names(), ", "), clip(v.dump()), where);
  for (const auto& [key, value] : v.items()) {
    const Switch* s = nullptr;
    for (const Switch& c : kSwitches)
      if (key == c.name) s = &c;
    HFT_CHECK(s, "fused: {} (from {})", unknown_name_message("fusion", key, fusion_names()), where);
    HFT_CHECK(value.is_boolean(), "fused.{} must be true or false, got {} (from {})", key, clip(value.dump()), where);
    f.*s->field = value.get<bool>();
  }
  return f;
}

nlohmann::json fusions_to_json(const Fusions& f) {
  nlohmann::json j = nlohmann::json::object();
  for (const Switch& s : kSwitches) j[s.name] = f.*s.field;
  return j;
}

}  // namespace hftrain
