// One optimizer as TrainingArguments.optim names it: the optim_args keys it takes and how it
// is built. Each optimizer's file defines its entry; optimizer_factory.cpp lists them, one row
// each. Adding an optimizer is that file and that row.
#pragma once

#include "hftrain/config/training_arguments.h"
#include "hftrain/optim/optimizer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

// optim_args as the config parsed them ("k=v,k=v": numbers, true/false, None, strings), read
// with the optimizer's own defaults; a value of the wrong type is a user error naming the key.
class OptimArgs {
 public:
  explicit OptimArgs(const nlohmann::json& kw) : kw_(kw) {}
  bool has(const char* key) const { return kw_.contains(key) && !kw_[key].is_null(); }
  double number(const char* key, double fallback) const;
  bool flag(const char* key, bool fallback) const;

 private:
  const nlohmann::json& kw_;
};

struct OptimizerEntry {
  std::string name;                     // HF's OptimizerNames value
  std::vector<std::string> optim_args;  // the keys it takes; none: optim_args has no meaning for it
  std::unique_ptr<Optimizer> (*create)(const TrainingArguments& args, std::vector<ParamGroup> groups,
                                       const OptimArgs& kw) = nullptr;
  void (*check)() = nullptr;  // a user error when this build cannot run it (null: it always can)
};

}  // namespace hftrain
