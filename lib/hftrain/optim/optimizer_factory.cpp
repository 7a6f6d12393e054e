#include "hftrain/optim/optimizer_factory.h"

#include "hftrain/core/error.h"
#include "hftrain/optim/adafactor.h"
#include "hftrain/optim/adagrad.h"
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/rmsprop.h"
#include "hftrain/optim/sgd.h"

#include <nlohmann/json.hpp>

namespace hftrain {

namespace {

// optim_args values were parsed and their keys checked in config/; here they get their types.
double number(const nlohmann::json& kw, const char* key, double fallback) {
  if (!kw.contains(key)) return fallback;
  HFT_CHECK(kw[key].is_number(), "optim_args: {} must be a number, got {}", key, kw[key].dump());
  return kw[key].get<double>();
}
bool flag(const nlohmann::json& kw, const char* key, bool fallback) {
  if (!kw.contains(key)) return fallback;
  HFT_CHECK(kw[key].is_boolean(), "optim_args: {} must be True or False, got {}", key, kw[key].dump());
  return kw[key].get<bool>();
}

}  // namespace

void optimizer_check(const TrainingArguments& args) {
  adamw_check_fused(args.optim == OptimizerName::kAdamWTorchFused);
}

std::unique_ptr<Optimizer> optimizer_create(const TrainingArguments& args, std::vector<ParamGroup> groups) {
  optimizer_check(args);
  const nlohmann::json& kw = args.optim_kwargs;
  switch (args.optim) {
    case OptimizerName::kAdamWTorch:
    case OptimizerName::kAdamWTorchFused:
      return std::make_unique<AdamW>(std::move(groups),
                                     AdamWOptions{args.adam_beta1, args.adam_beta2, args.adam_epsilon, false,
                                                  args.optim == OptimizerName::kAdamWTorchFused});
    case OptimizerName::kSgd:
      return std::make_unique<SGD>(std::move(groups), SGDOptions{number(kw, "momentum", 0), number(kw, "dampening", 0),
                                                                 flag(kw, "nesterov", false)});
    case OptimizerName::kAdagrad:
      return std::make_unique<Adagrad>(std::move(groups),
                                       AdagradOptions{number(kw, "lr_decay", 0), number(kw, "initial_accumulator_value", 0),
                                                      number(kw, "eps", 1e-10)});
    case OptimizerName::kRmsprop:
      return std::make_unique<RMSprop>(std::move(groups),
                                       RMSpropOptions{number(kw, "alpha", 0.99), number(kw, "eps", 1e-8),
                                                      number(kw, "momentum", 0), flag(kw, "centered", false)});
    case OptimizerName::kAdafactor: {
      AdafactorOptions o;
      o.scale_parameter = flag(kw, "scale_parameter", false);  // the Trainer's choice
      o.relative_step = flag(kw, "relative_step", false);
      o.warmup_init = flag(kw, "warmup_init", false);
      o.clip_threshold = number(kw, "clip_threshold", 1.0);
      o.decay_rate = number(kw, "decay_rate", -0.8);
      o.eps1 = number(kw, "eps1", 1e-30);
      o.eps2 = number(kw, "eps2", 1e-3);
      if (kw.contains("beta1") && !kw["beta1"].is_null()) o.beta1 = number(kw, "beta1", 0);
      if (!o.relative_step) o.lr = args.learning_rate;
      return std::make_unique<Adafactor>(std::move(groups), o);
    }
  }
  fail_runtime("unknown optimizer");
}

}  // namespace hftrain
