#include "hftrain/kernels/swiglu.h"

#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/cpu_threads.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/vec_exp.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

// No floating-point contraction: every instruction set gives the same bits.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace hftrain {

namespace {

constexpr int64_t kSwigluRows = 8;  // rows a thread takes at a time

// 1 / (1 + e^-v), with e^-|v| only (no overflow): for v < 0 it is e^v / (1 + e^v).
__attribute__((always_inline)) inline float sigmoid_inline(float v) {
  const float e = exp_nonpositive(v < 0.0f ? v : -v);
  const float s = 1.0f / (1.0f + e);
  return v < 0.0f ? e * s : s;
}

// (rows, I) row-major views: rows of a and b `lda`/`ldb` apart, y contiguous.
__attribute__((target_clones("avx512f", "avx2", "default"))) void swiglu_forward_rows(
    const float* __restrict a, int64_t lda, const float* __restrict b, int64_t ldb, int64_t I, int64_t r0, int64_t r1,
    float* __restrict y) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *ar = a + r * lda, *br = b + r * ldb;
    float* yr = y + r * I;
    for (int64_t i = 0; i < I; ++i) yr[i] = (ar[i] * sigmoid_inline(ar[i])) * br[i];
  }
}

// da = g b silu'(a), silu'(a) = s (1 + a (1 - s)); db = g silu(a).
__attribute__((target_clones("avx512f", "avx2", "default"))) void swiglu_backward_rows(
    const float* __restrict a, int64_t lda, const float* __restrict b, int64_t ldb, const float* __restrict g,
    int64_t I, int64_t r0, int64_t r1, float* __restrict da, float* __restrict db) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *ar = a + r * lda, *br = b + r * ldb, *gr = g + r * I;
    float *dar = da + r * I, *dbr = db + r * I;
    for (int64_t i = 0; i < I; ++i) {
      const float v = ar[i], s = sigmoid_inline(v);
      dar[i] = (gr[i] * br[i]) * (s * (1.0f + v * (1.0f - s)));
      dbr[i] = gr[i] * (v * s);
    }
  }
}

// x as (rows, I) with its rows side by side in memory but possibly apart (a slice of a wider
// projection): a view where the layout allows, else a contiguous copy.
at::Tensor as_rows(const at::Tensor& x) {
  const int64_t I = x.size(-1);
  at::Tensor r = x.stride(-1) == 1 ? x.reshape({-1, I}) : x.contiguous().view({-1, I});
  return r.stride(1) == 1 && r.stride(0) >= I ? r : r.contiguous();
}

class SwigluFn : public torch::autograd::Function<SwigluFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    const at::Tensor a2 = as_rows(a), b2 = as_rows(b);
    const int64_t rows = a2.size(0), I = a2.size(1);
    at::Tensor y = at::empty({rows, I}, a.options());
    const float *pa = a2.data_ptr<float>(), *pb = b2.data_ptr<float>();
    float* py = y.data_ptr<float>();
    cpu_parallel_for(rows, kSwigluRows, [&](int64_t r0, int64_t r1) {
      swiglu_forward_rows(pa, a2.stride(0), pb, b2.stride(0), I, r0, r1, py);
    });
    ctx->save_for_backward({a2, b2});
    ctx->saved_data["sizes"] = a.sizes().vec();
    return y.view(a.sizes());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &a2 = saved[0], &b2 = saved[1];
    const int64_t rows = a2.size(0), I = a2.size(1);
    const at::Tensor g = grads[0].contiguous();
    at::Tensor da = at::empty({rows, I}, g.options()), db = at::empty({rows, I}, g.options());
    const float *pa = a2.data_ptr<float>(), *pb = b2.data_ptr<float>(), *pg = g.data_ptr<float>();
    float *pda = da.data_ptr<float>(), *pdb = db.data_ptr<float>();
    cpu_parallel_for(rows, kSwigluRows, [&](int64_t r0, int64_t r1) {
      swiglu_backward_rows(pa, a2.stride(0), pb, b2.stride(0), pg, I, r0, r1, pda, pdb);
    });
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    return {da.view(sizes), db.view(sizes)};
  }
};

}  // namespace

at::Tensor swiglu_fused(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes() && a.dim() >= 1 && a.scalar_type() == at::kFloat &&
                  b.scalar_type() == at::kFloat && a.device().is_cpu() && b.device().is_cpu(),
              "swiglu_fused: float32 CPU a and b of the same shape expected");
  return SwigluFn::apply(a, b);
}

at::Tensor swiglu(const at::Tensor& a, const at::Tensor& b) {
  const bool fused = fusions().swiglu && loss_only() && !compat::cpu_autocast_enabled() && a.device().is_cpu() &&
                     b.device().is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
                     a.sizes() == b.sizes() && a.dim() >= 1;
  return fused ? swiglu_fused(a, b) : at::silu(a).mul(b);
}

}  // namespace hftrain

#pragma GCC pop_options
