// Typed reading of one config value (shared by the TrainingArguments table and the model /
// data sections): `bad(expected)` is called, and must throw, when the value has the wrong type.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

using BadValue = std::function<void(const std::string& expected)>;

inline void read_json_value(const nlohmann::json& v, bool& out, const BadValue& bad) {
  if (!v.is_boolean()) bad("true or false");
  out = v.get<bool>();
}
inline void read_json_value(const nlohmann::json& v, int64_t& out, const BadValue& bad) {
  if (v.is_number_integer()) out = v.get<int64_t>();
  else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) out = static_cast<int64_t>(v.get<double>());
  else bad("an integer");
}
inline void read_json_value(const nlohmann::json& v, double& out, const BadValue& bad) {
  if (!v.is_number()) bad("a number");
  out = v.get<double>();
}
inline void read_json_value(const nlohmann::json& v, std::string& out, const BadValue& bad) {
  if (!v.is_string()) bad("a string");
  out = v.get<std::string>();
}
// A string or a list of strings (HF's report_to, label_names).
inline void read_json_value(const nlohmann::json& v, std::vector<std::string>& out, const BadValue& bad) {
  out.clear();
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
    return;
  }
  if (!v.is_array()) bad("a string or a list of strings");
  for (const auto& e : v) {
    if (!e.is_string()) bad("a string or a list of strings");
    out.push_back(e.get<std::string>());
  }
}
// A mapping, or its JSON text as HF accepts (lr_scheduler_kwargs='{"num_cycles": 2}').
inline void read_json_value(const nlohmann::json& v, nlohmann::json& out, const BadValue& bad) {
  nlohmann::json d = v;
  if (v.is_string()) {
    try {
      d = nlohmann::json::parse(v.get<std::string>());
    } catch (const nlohmann::json::exception&) {
      bad("a mapping or its JSON text");
    }
  }
  if (!d.is_object()) bad("a mapping");
  out = d;
}
// null is "unset".
template <typename T>
void read_json_value(const nlohmann::json& v, std::optional<T>& out, const BadValue& bad) {
  if (v.is_null()) {
    out.reset();
    return;
  }
  T value{};
  read_json_value(v, value, bad);
  out = value;
}

}  // namespace hftrain
