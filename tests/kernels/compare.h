// How the fused kernels' tests compare a result with the unfused path's.
#pragma once

#include "hftrain/core/batch.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/models/hf_model_dir.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>

namespace hftrain::test {

// max |a - b| / max |b|: the largest difference relative to the reference's scale.
inline double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-30);
}

// Gradients: within 1e-5 of the reference's scale, or 1e-8 absolute where the true gradient is
// zero and both are rounding (a key bias: softmax ignores what shifts a whole row of scores).
inline bool grad_close(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() <= 1e-5 * b.abs().max().item<double>() + 1e-8;
}

// One training forward and backward of a golden model (models/<name>) with the fusions `f`,
// as the Trainer's step runs it (LossOnlyScope).
struct TrainingPass {
  double loss = 0;
  bool has_logits = false;
  std::map<std::string, at::Tensor> grads;  // the parameters that got one
};
inline TrainingPass training_pass(const std::string& name, const Batch& batch, std::optional<double> num_items,
                                  const Fusions& f) {
  ModelOptions opts;
  opts.pretrained = golden("models/" + name);
  std::shared_ptr<Model> model = model_create(opts);
  model->train();  // the golden models have no dropout
  fusions() = f;
  ModelOutput out;
  {
    LossOnlyScope loss_only;
    out = model->forward(batch, num_items);
  }
  fusions() = Fusions{};
  out.loss.backward();
  TrainingPass r{out.loss.item<double>(), out.logits.defined(), {}};
  for (const auto& p : model->named_parameters())
    if (p.value().grad().defined()) r.grads[p.key()] = p.value().grad().clone();
  return r;
}

// The fused pass gives the unfused loss (float rounding) and every parameter's gradient.
inline void check_same_training(const TrainingPass& fused, const TrainingPass& unfused) {
  CHECK(fused.loss == Approx(unfused.loss).epsilon(1e-6));
  REQUIRE(fused.grads.size() == unfused.grads.size());
  for (const auto& [key, g] : unfused.grads) {
    INFO(key);
    REQUIRE(fused.grads.count(key));
    CHECK(grad_close(fused.grads.at(key), g));
  }
}

// Each golden model's training pass on a batch of random tokens (labels the ids) with every
// fusion on equals the pass with the one fusion `off` switched off.
inline void check_fusion_in_training(std::initializer_list<const char*> names, bool Fusions::*off) {
  at::manual_seed(5);
  const at::Tensor ids = at::randint(64, {2, 12}, at::kLong);
  const Batch batch = {{"input_ids", ids}, {"labels", ids.clone()}};
  for (const char* name : names) {
    INFO(name);
    Fusions fused, unfused;
    unfused.*off = false;
    check_same_training(training_pass(name, batch, std::nullopt, fused),
                        training_pass(name, batch, std::nullopt, unfused));
  }
}

}  // namespace hftrain::test
