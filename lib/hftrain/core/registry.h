// Registry<Base, Args...>: name -> factory. Built-ins are added explicitly in
// builtins.cpp (static self-registration is dropped by linkers from static libraries).
#pragma once

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace hftrain {

template <typename Base, typename... Args>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Base>(Args...)>;

  explicit Registry(std::string what) : what_(std::move(what)) {}

  void add(const std::string& name, Factory factory) {
    if (factories_.count(name)) fail_runtime("{} \"{}\" registered twice", what_, name);
    factories_.emplace(name, std::move(factory));
  }

  bool has(const std::string& name) const { return factories_.count(name) > 0; }

  std::unique_ptr<Base> create(const std::string& name, Args... args) const {
    auto it = factories_.find(name);
    if (it == factories_.end()) fail("{}", unknown_name_message(what_, name, names()));
    return it->second(std::forward<Args>(args)...);
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, _] : factories_) out.push_back(name);
    return out;
  }

 private:
  std::string what_;
  std::map<std::string, Factory> factories_;
};

}  // namespace hftrain
