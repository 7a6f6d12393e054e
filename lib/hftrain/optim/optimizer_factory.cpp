#include "hftrain/optim/optimizer_factory.h"

#include "hftrain/core/error.h"
#include "hftrain/optim/adafactor.h"
#include "hftrain/optim/adagrad.h"
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/optimizer_entry.h"
#include "hftrain/optim/rmsprop.h"
#include "hftrain/optim/sgd.h"

namespace hftrain {

double OptimArgs::number(const char* key, double fallback) const {
  if (!kw_.contains(key)) return fallback;
  HFT_CHECK(kw_[key].is_number(), "optim_args: {} must be a number, got {}", key, kw_[key].dump());
  return kw_[key].get<double>();
}

bool OptimArgs::flag(const char* key, bool fallback) const {
  if (!kw_.contains(key)) return fallback;
  HFT_CHECK(kw_[key].is_boolean(), "optim_args: {} must be True or False, got {}", key, kw_[key].dump());
  return kw_[key].get<bool>();
}

const std::vector<OptimizerEntry>& optimizer_table() {
  static const std::vector<OptimizerEntry> table = {
      adamw_torch_optimizer(), adamw_torch_fused_optimizer(), sgd_optimizer(),
      adagrad_optimizer(),     rmsprop_optimizer(),           adafactor_optimizer(),
  };
  return table;
}

const OptimizerEntry* optimizer_find(const std::string& name) {
  for (const OptimizerEntry& e : optimizer_table())
    if (e.name == name) return &e;
  return nullptr;
}

std::vector<std::string> optimizer_names_available() {
  std::vector<std::string> names;
  for (const OptimizerEntry& e : optimizer_table()) names.push_back(e.name);
  return names;
}

void optimizer_check(const TrainingArguments& args) {
  const OptimizerEntry* e = optimizer_find(args.optim);
  HFT_CHECK(e != nullptr, "optim {} is not available in hftrain", args.optim);
  if (e->check) e->check();
  // optim_args typed, and the optimizer's own checks of its options (torch's messages), now:
  // built over no parameters.
  e->create(args, {}, OptimArgs(args.optim_kwargs));
}

std::unique_ptr<Optimizer> optimizer_create(const TrainingArguments& args, std::vector<ParamGroup> groups) {
  optimizer_check(args);
  return optimizer_find(args.optim)->create(args, std::move(groups), OptimArgs(args.optim_kwargs));
}

}  // namespace hftrain
