#include "hftrain/kernels/rms_norm.h"

#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/cpu_threads.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/vec_dot.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

// No floating-point contraction: every instruction set gives the same bits.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace hftrain {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kRowBlock = 64;  // rows a thread takes at a time; the weight gradient's partial sums are per block
constexpr int kNormLanes = 16;         // partial sums, so the reductions vectorize

// Rows [r0, r1) of x (C wide): y = x rstd (w + offset); rstd kept per row.
__attribute__((target_clones("avx512f", "avx2", "default"))) void forward_rows(
    const float* __restrict x, const float* __restrict w, float offset, float eps, int64_t C, int64_t r0, int64_t r1,
    float* __restrict y, float* __restrict rstd) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    const float rs = 1.0f / std::sqrt(dot_product(xr, xr, C) / static_cast<float>(C) + eps);
    rstd[r] = rs;
    float* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] * rs) * (w[c] + offset);
  }
}

// Rows [r0, r1): dx, and this block's share of dw (added into dw_part, C wide).
__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_rows(
    const float* __restrict x, const float* __restrict g, const float* __restrict w, const float* __restrict rstd,
    float offset, int64_t C, int64_t r0, int64_t r1, float* __restrict dx, float* __restrict dw_part) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * C, *gr = g + r * C;
    const float rs = rstd[r];
    float lane[kNormLanes] = {};
    float dot = 0.0f;  // sum(gw x^)
    int64_t c = 0;
    for (; c + kNormLanes <= C; c += kNormLanes)
      for (int j = 0; j < kNormLanes; ++j) lane[j] += (gr[c + j] * (w[c + j] + offset)) * (xr[c + j] * rs);
    for (; c < C; ++c) dot += (gr[c] * (w[c] + offset)) * (xr[c] * rs);
    for (float l : lane) dot += l;
    const float mean = dot / static_cast<float>(C);
    float* dxr = dx + r * C;
    for (c = 0; c < C; ++c) {
      const float xh = xr[c] * rs;
      dxr[c] = rs * (gr[c] * (w[c] + offset) - xh * mean);
      dw_part[c] += gr[c] * xh;
    }
  }
}

class RmsNormFn : public torch::autograd::Function<RmsNormFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight, double eps,
                            double offset) {
    const at::Tensor x = input.contiguous(), w = weight.contiguous();
    const int64_t C = x.size(-1), rows = C ? x.numel() / C : 0;
    at::Tensor y = at::empty_like(x), rstd = at::empty({rows}, x.options());
    const float *px = x.data_ptr<float>(), *pw = w.data_ptr<float>();
    float *py = y.data_ptr<float>(), *pr = rstd.data_ptr<float>();
    cpu_parallel_for(rows, kRowBlock, [&](int64_t r0, int64_t r1) {
      forward_rows(px, pw, static_cast<float>(offset), static_cast<float>(eps), C, r0, r1, py, pr);
    });
    ctx->save_for_backward({x, w, rstd});
    ctx->saved_data["offset"] = offset;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
    const float offset = static_cast<float>(ctx->saved_data["offset"].toDouble());
    const at::Tensor g = grads[0].contiguous();
    const int64_t C = x.size(-1), rows = C ? x.numel() / C : 0, blocks = (rows + kRowBlock - 1) / kRowBlock;
    at::Tensor dx = at::empty_like(x), parts = at::zeros({blocks, C}, x.options());
    const float *px = x.data_ptr<float>(), *pg = g.data_ptr<float>(), *pw = w.data_ptr<float>(),
                *pr = rstd.data_ptr<float>();
    float *pdx = dx.data_ptr<float>(), *pp = parts.data_ptr<float>();
    cpu_parallel_for(rows, kRowBlock, [&](int64_t r0, int64_t r1) {
      backward_rows(px, pg, pw, pr, offset, C, r0, r1, pdx, pp + (r0 / kRowBlock) * C);
    });
    // The blocks' partial sums, added in block order.
    at::Tensor dw = at::zeros({C}, x.options());
    float* pdw = dw.data_ptr<float>();
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t c = 0; c < C; ++c) pdw[c] += pp[b * C + c];
    return {dx, dw.view(w.sizes()), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& weight, double eps, double weight_offset) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && x.device().is_cpu() &&
                  weight.device().is_cpu() && x.dim() >= 1 && weight.numel() == x.size(-1),
              "rms_norm_fused: float32 CPU x (..., C) and weight (C) expected");
  return RmsNormFn::apply(x, weight, eps, weight_offset);
}

at::Tensor rms_norm_fused_or_undefined(const at::Tensor& x, const at::Tensor& weight, double eps,
                                       double weight_offset) {
  const bool fused = fusions().norm && loss_only() && !compat::cpu_autocast_enabled() && x.device().is_cpu() &&
                     x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && x.dim() >= 1 &&
                     weight.numel() == x.size(-1);
  return fused ? rms_norm_fused(x, weight, eps, weight_offset) : at::Tensor();
}

}  // namespace hftrain

#pragma GCC pop_options
