#include "hftrain/kernels/attention.h"

#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/batched_gemm.h"
#include "hftrain/kernels/fusions.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace hftrain {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kDefaultBlock = 64;

// The block's masked, scaled scores (BH, rows, kend) for queries [a, a + rows) against keys
// [0, kend): bias (B or 1, 1 or H, T or 1, S; empty: none) copied in, then scale * q k^T added
// by the GEMM.
at::Tensor block_scores(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& bias, int64_t B, int64_t H,
                        int64_t a, int64_t rows, int64_t kend, double scale) {
  const at::Tensor qb = qf.narrow(1, a, rows), kt = kf.narrow(1, 0, kend).transpose(1, 2);
  at::Tensor s;
  if (bias.numel() == 0) {
    s = at::empty({B * H, rows, kend}, qf.options());
  } else {
    const at::Tensor b = bias.size(2) == 1 ? bias : bias.narrow(2, a, rows);  // (.., 1, S): the same for every query
    s = b.narrow(3, 0, kend).expand({B, H, rows, kend}).contiguous().view({B * H, rows, kend});
  }
  batched_gemm(qb, kt, s, static_cast<float>(scale), bias.numel() == 0 ? 0.0f : 1.0f);
  return s;
}

class BlockedAttentionFn : public torch::autograd::Function<BlockedAttentionFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& bias, double scale, bool causal, int64_t block) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), S = k.size(2);
    const at::Tensor qf = q.contiguous().view({B * H, T, D}), kf = k.contiguous().view({B * H, S, D}),
                     vf = v.contiguous().view({B * H, S, D});
    at::Tensor out = at::empty({B * H, T, D}, q.options());
    for (int64_t a = 0; a < T; a += block) {
      const int64_t rows = std::min(block, T - a), kend = causal ? std::min(a + rows, S) : S;
      const at::Tensor p = at::softmax(block_scores(qf, kf, bias, B, H, a, rows, kend, scale), -1);
      at::Tensor out_rows = out.narrow(1, a, rows);
      batched_gemm(p, vf.narrow(1, 0, kend), out_rows, 1.0f, 0.0f);
    }
    ctx->save_for_backward({qf, kf, vf, bias});
    ctx->saved_data["shape"] = std::vector<int64_t>{B, H, T, D, S};
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["block"] = block;
    return out.view({B, H, T, D});
  }

  // Per block, with P = softmax(scores) made again: dV += P^T dO, dP = dO V^T,
  // dS = P (dP - rowsum(dP P)) (softmax's backward), dQ = scale dS K, dK += scale dS^T Q.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &qf = saved[0], &kf = saved[1], &vf = saved[2], &bias = saved[3];
    const std::vector<int64_t> shape = ctx->saved_data["shape"].toIntVector();
    const int64_t B = shape[0], H = shape[1], T = shape[2], D = shape[3], S = shape[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool causal = ctx->saved_data["causal"].toBool();
    const int64_t block = ctx->saved_data["block"].toInt();
    const at::Tensor dout = grads[0].contiguous().view({B * H, T, D});
    at::Tensor dq = at::empty_like(qf), dk = at::zeros_like(kf), dv = at::zeros_like(vf);
    for (int64_t a = 0; a < T; a += block) {
      const int64_t rows = std::min(block, T - a), kend = causal ? std::min(a + rows, S) : S;
      const at::Tensor p = at::softmax(block_scores(qf, kf, bias, B, H, a, rows, kend, scale), -1);
      const at::Tensor dob = dout.narrow(1, a, rows), kb = kf.narrow(1, 0, kend), vb = vf.narrow(1, 0, kend);
      at::Tensor dv_keys = dv.narrow(1, 0, kend), dk_keys = dk.narrow(1, 0, kend), dq_rows = dq.narrow(1, a, rows);
      batched_gemm(p.transpose(1, 2), dob, dv_keys, 1.0f, 1.0f);
      at::Tensor dp = at::empty_like(p);
      batched_gemm(dob, vb.transpose(1, 2), dp, 1.0f, 0.0f);
      const at::Tensor ds = at::_softmax_backward_data(dp, p, -1, p.scalar_type());
      batched_gemm(ds, kb, dq_rows, static_cast<float>(scale), 0.0f);
      batched_gemm(ds.transpose(1, 2), qf.narrow(1, a, rows), dk_keys, static_cast<float>(scale), 1.0f);
    }
    return {dq.view({B, H, T, D}), dk.view({B, H, S, D}), dv.view({B, H, S, D}),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor blocked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                             double scale, bool causal, int64_t block) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                  q.size(1) == k.size(1) && q.size(3) == k.size(3),
              "blocked_attention: q (B,H,T,D), k and v (B,H,S,D) expected");
  TORCH_CHECK(!bias.defined() || bias.dim() == 4, "blocked_attention: bias (B or 1, 1 or H, T or 1, S) expected");
  // An empty tensor stands for no bias: autograd functions take defined tensors only.
  return BlockedAttentionFn::apply(q, k, v, bias.defined() ? bias : at::empty({0}, q.options()), scale, causal,
                                   block > 0 ? block : kDefaultBlock);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                     double dropout_p, double scale, bool causal) {
  const bool fused = fusions().attention && loss_only() && dropout_p == 0 && q.device().is_cpu() &&
                     q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && q.size(2) == k.size(2) &&
                     (!bias.defined() || bias.scalar_type() == at::kFloat);
  if (fused) return blocked_attention(q, k, v, bias, scale, causal);
  return compat::attention(q, k, v, bias, dropout_p, scale);
}

}  // namespace hftrain
