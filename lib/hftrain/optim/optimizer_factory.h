// The optimizer HF's Trainer builds for TrainingArguments.optim (trainer.py
// get_optimizer_cls_and_kwargs), over the Trainer's decay / no-decay parameter groups.
#pragma once

#include "hftrain/config/training_arguments.h"
#include "hftrain/optim/optimizer.h"

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

struct OptimizerEntry;

// The optimizers hftrain has, by HF's name, in the order they are listed to users.
const std::vector<OptimizerEntry>& optimizer_table();
const OptimizerEntry* optimizer_find(const std::string& name);  // null when hftrain lacks it
std::vector<std::string> optimizer_names_available();

// adamw_torch: AdamW(lr, betas=(adam_beta1, adam_beta2), eps=adam_epsilon).
// sgd / adagrad / rmsprop: torch's class with lr, plus optim_args.
// adafactor: HF's Adafactor(lr, scale_parameter=False, relative_step=False), plus optim_args.
std::unique_ptr<Optimizer> optimizer_create(const TrainingArguments& args, std::vector<ParamGroup> groups);

// A user error naming optim when the optimizer cannot be built here (adamw_torch_fused needs
// LibTorch 2.4 or newer), or an optim_args value is of the wrong type or out of the
// optimizer's range; called when the config is read.
void optimizer_check(const TrainingArguments& args);

}  // namespace hftrain
