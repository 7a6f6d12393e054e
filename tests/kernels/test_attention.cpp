// Attention by blocks of query rows against the eager computation it replaces (scores, mask,
// softmax, values): outputs within float rounding and every gradient within 1e-5 relative, for
// the masks the models make (causal with padding, sliding windows, packed documents, none), and
// through whole models in training.
#include "hftrain/builtins.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/collator.h"
#include "hftrain/kernels/attention.h"
#include "hftrain/kernels/batched_gemm.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/layers.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <map>
#include <string>

using hftrain::test::check_same_training;
using hftrain::test::training_pass;
using hftrain::test::rel_diff;

TEST_CASE("blocked attention equals the eager attention, forward and backward, for every mask the models make",
          "[unit][kernels]") {
  at::manual_seed(3);
  const int64_t B = 2, H = 3, T = 13, D = 8;
  const at::Tensor q0 = at::randn({B, H, T, D}), k0 = at::randn({B, H, T, D}), v0 = at::randn({B, H, T, D});
  const at::Tensor grad = at::randn({B, H, T, D});
  at::Tensor mask = at::ones({B, T}, at::kLong);
  mask[1].slice(0, 9).fill_(0);  // right padding in the second row
  const at::Tensor position_ids = at::cat({at::arange(5), at::arange(8)}).view({1, T}).expand({B, T}).contiguous();
  struct Case {
    const char* name;
    at::Tensor bias;
    bool causal;
  };
  const Case cases[] = {
      {"causal with padding", hftrain::attention_bias(T, mask, q0), true},
      {"sliding window of 4", hftrain::attention_bias(T, mask, q0, 4), true},
      {"packed documents", hftrain::packed_attention_bias(position_ids, q0), true},
      // The last query's row of the causal mask: padding alone, for every query.
      {"padding only (an encoder)", hftrain::attention_bias(T, mask, q0).narrow(2, T - 1, 1), false},
      {"no mask", at::Tensor(), false},
  };
  for (const Case& c : cases) {
    at::Tensor q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
    const at::Tensor ref = hftrain::compat::attention(q, k, v, c.bias, 0.0, 0.35);
    ref.backward(grad);
    for (int64_t block : {1, 4, 64}) {
      INFO(c.name << ", block " << block);
      at::Tensor qf = q0.clone().requires_grad_(), kf = k0.clone().requires_grad_(), vf = v0.clone().requires_grad_();
      const at::Tensor out = hftrain::blocked_attention(qf, kf, vf, c.bias, 0.35, c.causal, block);
      CHECK(rel_diff(out, ref) <= 1e-6);
      out.backward(grad);
      CHECK(rel_diff(qf.grad(), q.grad()) <= 1e-5);
      CHECK(rel_diff(kf.grad(), k.grad()) <= 1e-5);
      CHECK(rel_diff(vf.grad(), v.grad()) <= 1e-5);
    }
  }
}

TEST_CASE("in training, blocked attention gives every family the eager loss and parameter gradients",
          "[unit][kernels][models]") {
  hftrain::register_builtins();
  at::manual_seed(5);
  const at::Tensor ids = at::randint(64, {2, 12}, at::kLong);
  at::Tensor mask = at::ones({2, 12}, at::kLong), labels = ids.clone();
  mask[1].slice(0, 8).fill_(0);
  labels[1].slice(0, 8).fill_(-100);
  const hftrain::Batch padded = {{"input_ids", ids}, {"attention_mask", mask}, {"labels", labels}};
  const hftrain::Batch packed = hftrain::collate_flattened({{3, 9, 27, 4, 5}, {8, 1, 2, 30, 7, 6, 11}});
  // Mistral's window (8) is crossed inside the 12 tokens; BERT is an encoder (no causal mask).
  for (const char* name : {"gpt2-clm", "llama-clm", "mistral-clm", "qwen2-clm", "phi3-clm", "bert-mlm"}) {
    for (const hftrain::Batch* batch : {&padded, &packed}) {
      if (batch == &packed && std::string(name) == "bert-mlm") continue;  // packing is for causal LMs
      INFO(name << (batch == &packed ? ", packed" : ", padded"));
      hftrain::Fusions eager, blocked;
      eager.attention = eager.lm_head_loss = blocked.lm_head_loss = false;
      check_same_training(training_pass(name, *batch, std::nullopt, blocked),
                          training_pass(name, *batch, std::nullopt, eager));
    }
  }
}

TEST_CASE("batched_gemm writes alpha a b + beta c into views, as at::bmm computes it", "[unit][kernels]") {
  at::manual_seed(3);
  const at::Tensor big_a = at::randn({3, 40, 24}), big_b = at::randn({3, 24, 50});
  // Row-major, a transposed view, and narrowed slices of larger tensors, as attention passes them.
  const at::Tensor a_row = big_a.narrow(1, 5, 17), a_col = at::randn({3, 24, 17}).transpose(1, 2);
  const at::Tensor b_row = big_b.narrow(2, 0, 31), b_col = at::randn({3, 31, 24}).transpose(1, 2);
  for (const at::Tensor* a : {&a_row, &a_col})
    for (const at::Tensor* b : {&b_row, &b_col})
      for (float beta : {0.0f, 1.0f}) {
        INFO("a " << (a == &a_row ? "row" : "col") << ", b " << (b == &b_row ? "row" : "col") << ", beta " << beta);
        at::Tensor host = at::randn({3, 30, 40});
        const at::Tensor before = host.clone();
        at::Tensor c = host.narrow(1, 7, 17).narrow(2, 4, 31);
        const at::Tensor expected = c.clone().mul_(beta).add_(at::bmm(*a, *b), 0.5);
        hftrain::batched_gemm(*a, *b, c, 0.5f, beta);
        CHECK(rel_diff(c, expected) < 1e-6);
        // Nothing outside the view is touched.
        at::Tensor outside = host.clone(), outside_before = before.clone();
        outside.narrow(1, 7, 17).narrow(2, 4, 31).zero_();
        outside_before.narrow(1, 7, 17).narrow(2, 4, 31).zero_();
        CHECK(at::equal(outside, outside_before));
      }
}
