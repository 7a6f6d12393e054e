// The fused LM head + cross-entropy against the unfused path it replaces (at::linear, then
// PyTorch's cross_entropy): the loss within float rounding, every gradient within 1e-5
// relative; for a bare head and through whole models in training.
#include "hftrain/builtins.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/linear_cross_entropy.h"
#include "hftrain/models/hf_model_dir.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <string>

using hftrain::test::check_same_training;
using hftrain::test::training_pass;
using hftrain::test::rel_diff;

TEST_CASE("the fused head loss equals linear + cross_entropy, loss and gradients, every chunking",
          "[unit][kernels]") {
  at::manual_seed(7);
  const int64_t N = 37, d = 24, V = 101;
  const at::Tensor h0 = at::randn({N, d}), w0 = at::randn({V, d}).mul(0.3);
  at::Tensor labels = at::randint(V, {N}, at::kLong);
  labels.index_put_({at::arange(0, N, 5)}, -100);  // some positions not scored
  for (std::optional<double> items : {std::optional<double>(), std::optional<double>(53.0)}) {
    // The reference: PyTorch's cross_entropy on the materialised logits.
    at::Tensor h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_();
    const at::Tensor logits = at::linear(h, w);
    const at::Tensor ref = items ? at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum, -100).div(*items)
                                 : at::cross_entropy_loss(logits, labels, {}, at::Reduction::Mean, -100);
    ref.mul(1.7).backward();  // a gradient other than 1 reaches the loss
    for (int64_t chunk : {0, 1, 7, 64}) {
      INFO("num_items " << (items ? *items : -1) << ", chunk " << chunk);
      at::Tensor hf = h0.clone().requires_grad_(), wf = w0.clone().requires_grad_();
      const at::Tensor loss = hftrain::linear_cross_entropy(hf, wf, labels, items, chunk);
      CHECK(loss.scalar_type() == at::kFloat);
      CHECK(loss.item<double>() == Approx(ref.item<double>()).epsilon(1e-6));
      loss.mul(1.7).backward();
      CHECK(rel_diff(hf.grad(), h.grad()) <= 1e-5);
      CHECK(rel_diff(wf.grad(), w.grad()) <= 1e-5);
    }
  }
  // Only the hidden states need a gradient (a frozen head): the weight gets none.
  at::Tensor hf = h0.clone().requires_grad_();
  hftrain::linear_cross_entropy(hf, w0, labels, std::nullopt).backward();
  CHECK(hf.grad().defined());
  // No label at all: NaN, as the mean over no labels is.
  CHECK(std::isnan(hftrain::linear_cross_entropy(h0, w0, at::full({N}, -100, at::kLong), std::nullopt).item<double>()));
}

TEST_CASE("in training, a causal LM's fused head loss gives the unfused loss and every parameter's gradient",
          "[unit][kernels][models]") {
  hftrain::register_builtins();
  at::manual_seed(11);
  const at::Tensor ids = at::randint(64, {3, 10}, at::kLong);
  at::Tensor labels = ids.clone();
  labels[1].slice(0, 6).fill_(-100);  // a row with padding
  const hftrain::Batch batch = {{"input_ids", ids}, {"labels", labels}};
  // GPT-2 (head tied to wte), Llama untied and tied, Qwen2.
  for (const char* name : {"gpt2-clm", "llama-clm", "llama-clm-tied", "qwen2-clm"}) {
    for (std::optional<double> items : {std::optional<double>(), std::optional<double>(19.0)}) {
      INFO(name << ", num_items " << (items ? *items : -1));
      hftrain::Fusions unfused;
      unfused.lm_head_loss = false;
      const hftrain::test::TrainingPass f = training_pass(name, batch, items, hftrain::Fusions{}),
                                        u = training_pass(name, batch, items, unfused);
      CHECK((!f.has_logits && u.has_logits));  // the fused path makes no logits
      check_same_training(f, u);
    }
  }
}
