// Attention by blocks of query rows against the eager computation it replaces (scores, mask,
// softmax, values): outputs within float rounding and every gradient within 1e-5 relative, for
// the masks the models make (causal with padding, sliding windows, packed documents, none), and
// through whole models in training.
#include "hftrain/builtins.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/collator.h"
#include "hftrain/kernels/attention.h"
#include "hftrain/kernels/blas.h"
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

namespace {

// An attention's output and the gradients of q, k and v.
struct Result {
  at::Tensor out, dq, dk, dv;
};

// The eager attention (scores, mask, softmax, values) on q, k, v, backward from grad.
Result eager_attention(const at::Tensor& q0, const at::Tensor& k0, const at::Tensor& v0, const at::Tensor& bias,
                       const at::Tensor& grad) {
  at::Tensor q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
  const at::Tensor out = hftrain::compat::attention(q, k, v, bias, 0.0, 0.35);
  out.backward(grad);
  return {out, q.grad(), k.grad(), v.grad()};
}

// Outputs within float rounding, every gradient within 1e-5 relative.
void check_matches(const Result& got, const Result& ref) {
  CHECK(rel_diff(got.out, ref.out) <= 1e-6);
  CHECK(rel_diff(got.dq, ref.dq) <= 1e-5);
  CHECK(rel_diff(got.dk, ref.dk) <= 1e-5);
  CHECK(rel_diff(got.dv, ref.dv) <= 1e-5);
}

}  // namespace

TEST_CASE("blocked attention equals the eager attention, forward and backward, for every mask the models make",
          "[unit][kernels]") {
  at::manual_seed(3);
  const int64_t B = 2, H = 3, T = 13, D = 8;
  const at::Tensor q0 = at::randn({B, H, T, D}), k0 = at::randn({B, H, T, D}), v0 = at::randn({B, H, T, D});
  const at::Tensor grad = at::randn({B, H, T, D});
  at::Tensor mask = at::ones({B, T}, at::kLong);
  mask[1].slice(0, 9).fill_(0);  // right padding in the second row
  const at::Tensor position_ids = at::cat({at::arange(5), at::arange(8)}).view({1, T}).expand({B, T}).contiguous();
  const at::Tensor causal = hftrain::attention_bias(T, {}, q0);
  struct Case {
    const char* name;
    at::Tensor bias;  // what the kernel gets
    bool causal;
    at::Tensor eager_bias;  // the same mask for the eager attention
  };
  const Case cases[] = {
      {"causal with padding", hftrain::attention_bias(T, mask, q0), true, hftrain::attention_bias(T, mask, q0)},
      {"sliding window of 4", hftrain::attention_bias(T, mask, q0, 4), true, hftrain::attention_bias(T, mask, q0, 4)},
      {"packed documents", hftrain::packed_attention_bias(position_ids, q0), true,
       hftrain::packed_attention_bias(position_ids, q0)},
      // The last query's row of the causal mask: padding alone, for every query.
      {"padding only (an encoder)", hftrain::attention_bias(T, mask, q0).narrow(2, T - 1, 1), false,
       hftrain::attention_bias(T, mask, q0).narrow(2, T - 1, 1)},
      {"no mask", at::Tensor(), false, at::Tensor()},
      // No bias: the kernel masks the keys after each query itself.
      {"causal, no bias", at::Tensor(), true, causal},
  };
  for (const Case& c : cases) {
    const Result ref = eager_attention(q0, k0, v0, c.eager_bias, grad);
    for (int64_t block : {1, 4, 5, 64}) {
      INFO(c.name << ", block " << block);
      at::Tensor q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
      const at::Tensor out = hftrain::blocked_attention(q, k, v, c.bias, 0.35, c.causal, block);
      out.backward(grad);
      check_matches({out, q.grad(), k.grad(), v.grad()}, ref);
    }
  }
}

TEST_CASE("blocked attention reads heads split from one projection and a strided gradient where they lie",
          "[unit][kernels]") {
  at::manual_seed(4);
  const int64_t B = 2, H = 3, T = 11, D = 8;
  const at::Tensor q0 = at::randn({B, H, T, D}), k0 = at::randn({B, H, T, D}), v0 = at::randn({B, H, T, D});
  const at::Tensor grad = at::randn({B, H, T, D}), bias = hftrain::attention_bias(T, {}, q0);
  // As the models pass them: q, k, v the (B,T,H,D) slices of one (B,T,3,H,D) output, viewed (B,H,T,D).
  at::Tensor packed = at::stack({q0, k0, v0}, 2).transpose(1, 3).contiguous().requires_grad_();
  const auto head = [&](const at::Tensor& t, int64_t i) { return t.select(2, i).transpose(1, 2); };
  const at::Tensor out = hftrain::blocked_attention(head(packed, 0), head(packed, 1), head(packed, 2), bias, 0.35,
                                                    true, 4);
  // An incoming gradient whose last dimension is not contiguous (the kernel takes a copy).
  out.backward(grad.transpose(2, 3).contiguous().transpose(2, 3));
  const at::Tensor g = packed.grad();
  check_matches({out, head(g, 0), head(g, 1), head(g, 2)}, eager_attention(q0, k0, v0, bias, grad));
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

TEST_CASE("gemm_rows writes alpha op(a) op(b) + beta c into a block of a larger matrix, as at::mm computes it",
          "[unit][kernels]") {
  at::manual_seed(3);
  const int64_t m = 17, n = 31, k = 24;
  // Each operand a block of a larger row-major matrix (row stride above its width), stored
  // as op() reads it ('N') or transposed ('T').
  const at::Tensor big_a = at::randn({40, 50}), big_b = at::randn({45, 60});
  for (char ta : {'N', 'T'})
    for (char tb : {'N', 'T'})
      for (float beta : {0.0f, 1.0f}) {
        INFO("trans_a " << ta << ", trans_b " << tb << ", beta " << beta);
        const at::Tensor a = ta == 'N' ? big_a.narrow(0, 3, m).narrow(1, 2, k) : big_a.narrow(0, 3, k).narrow(1, 2, m);
        const at::Tensor b = tb == 'N' ? big_b.narrow(0, 1, k).narrow(1, 5, n) : big_b.narrow(0, 1, n).narrow(1, 5, k);
        at::Tensor host = at::randn({30, 40});
        at::Tensor c = host.narrow(0, 7, m).narrow(1, 4, n);
        if (beta == 0) c.fill_(NAN);  // beta 0: whatever c held is ignored
        const at::Tensor before = host.clone();
        const at::Tensor expected =
            at::mm(ta == 'N' ? a : a.t(), tb == 'N' ? b : b.t()).mul(0.5).add(beta == 0 ? at::zeros_like(c) : c);
        hftrain::gemm_rows(ta, tb, m, n, k, 0.5f, a.data_ptr<float>(), a.stride(0), b.data_ptr<float>(), b.stride(0),
                           beta, c.data_ptr<float>(), c.stride(0));
        CHECK(rel_diff(c, expected) < 1e-6);
        // Nothing outside the block is touched.
        at::Tensor outside = host.clone(), outside_before = before.clone();
        outside.narrow(0, 7, m).narrow(1, 4, n).zero_();
        outside_before.narrow(0, 7, m).narrow(1, 4, n).zero_();
        CHECK(at::equal(outside, outside_before));
      }
}
