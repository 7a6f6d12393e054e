#include "hftrain/kernels/attention.h"

#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/blas.h"
#include "hftrain/kernels/cpu_threads.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/vec_dot.h"
#include "hftrain/kernels/vec_exp.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

// The row loops are compiled without contraction into fused multiply-adds, so that the clones
// for different instruction sets give the same results.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace hftrain {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kDefaultBlock = 64;
constexpr float kMasked = std::numeric_limits<float>::lowest();  // as attention_bias fills masked places
constexpr int kLanes = 16;                                       // partial sums, so the reductions vectorize

// Softmax of one row in place; keeps its max and 1 / sum(e^(s - max)) in stats[0..1], from which
// backward makes the same row again. (Not the log-sum-exp: a row masked everywhere, a padded
// query's, has max at float's lowest, where adding log(sum) is lost to rounding.)
__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_row(float* s, int64_t n, float* stats) {
  float lane[kLanes];
  for (float& l : lane) l = kMasked;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = s[i + j] > lane[j] ? s[i + j] : lane[j];
  float mx = kMasked;
  for (; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  for (float l : lane) mx = l > mx ? l : mx;
  for (float& l : lane) l = 0.0f;
  for (i = 0; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += (s[i + j] = exp_nonpositive(s[i + j] - mx));
  float sum = 0.0f;
  for (; i < n; ++i) sum += (s[i] = exp_nonpositive(s[i] - mx));
  for (float l : lane) sum += l;
  const float inv = 1.0f / sum;
  for (i = 0; i < n; ++i) s[i] *= inv;
  stats[0] = mx;
  stats[1] = inv;
}

// The probabilities forward made, from the row's scores and stats (in place).
__attribute__((target_clones("avx512f", "avx2", "default"))) void probabilities_row(float* s, int64_t n,
                                                                                      const float* stats) {
  const float mx = stats[0], inv = stats[1];
  for (int64_t i = 0; i < n; ++i) s[i] = exp_nonpositive(s[i] - mx) * inv;
}

// Softmax's backward in place of dp: ds = p (dp - delta), delta = sum(dp p) = sum(dO o).
__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_grad_row(const float* p, float* dp,
                                                                                     int64_t n, float delta) {
  for (int64_t i = 0; i < n; ++i) dp[i] = p[i] * (dp[i] - delta);
}

// One head's matrices: a row-major (rows, D) matrix at `p` with row stride `ld`.
struct Rows {
  float* p;
  int64_t ld;
  float* row(int64_t i) const { return p + i * ld; }
};

// Where head (b, h) of a (B,H,T,D) tensor starts (any strides; the last dimension's is 1).
Rows head_of(const at::Tensor& x, int64_t b, int64_t h) {
  return {x.data_ptr<float>() + b * x.stride(0) + h * x.stride(1), x.stride(2)};
}
// Head (b, h) of a (B,T,H,D) contiguous tensor.
Rows head_of_bthd(const at::Tensor& x, int64_t b, int64_t h) {
  const int64_t T = x.size(1), H = x.size(2), D = x.size(3);
  return {x.data_ptr<float>() + (b * T * H + h) * D, H * D};
}

// What every block of a head needs: the inputs, and the geometry.
struct Problem {
  at::Tensor q, k, v, bias;  // (B,H,T,D), (B,H,S,D) x2, (B or 1, 1 or H, T or 1, S) or empty
  int64_t B, H, T, D, S, block;
  float scale;
  bool causal;
  int64_t keys_end(int64_t a, int64_t rows) const { return causal ? std::min(a + rows, S) : S; }
};

// The block's masked, scaled scores (rows, kend), row stride kend, into s: bias rows copied
// in, scale q k^T added by the product, then (causal) every key after its query masked.
void block_scores(const Problem& pb, int64_t b, int64_t h, int64_t a, int64_t rows, int64_t kend, float* s) {
  const Rows q = head_of(pb.q, b, h), k = head_of(pb.k, b, h);
  float beta = 0.0f;
  if (pb.bias.numel() != 0) {
    const at::Tensor& m = pb.bias;
    const float* base = m.data_ptr<float>() + (m.size(0) == 1 ? 0 : b * m.stride(0)) + (m.size(1) == 1 ? 0 : h * m.stride(1));
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(s + i * kend, base + (m.size(2) == 1 ? 0 : (a + i) * m.stride(2)), sizeof(float) * kend);
    beta = 1.0f;
  }
  gemm_rows('N', 'T', rows, kend, pb.D, pb.scale, q.row(a), q.ld, k.p, k.ld, beta, s, kend);
  if (pb.causal)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = a + i + 1; j < kend; ++j) s[i * kend + j] = kMasked;
}

// Scratch for one block's (rows, S) matrices, per thread, kept between calls.
float* scratch(size_t slot, int64_t floats) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& v = buffers[slot];
  if (v.size() < static_cast<size_t>(floats)) v.resize(static_cast<size_t>(floats));
  return v.data();
}

// Runs fn(b, h) for every head: side by side on every core with OpenBLAS held to one thread
// per product (each head's products are small), else one head after another.
template <typename Fn>
void for_each_head(int64_t B, int64_t H, const Fn& fn) {
  BlasOnOneThread one;
  const auto range = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i / H, i % H);
  };
  if (one.ok()) cpu_parallel_for(B * H, 1, range);
  else range(0, B * H);
}

void forward_head(const Problem& pb, int64_t b, int64_t h, const Rows& out, float* stats) {
  const Rows v = head_of(pb.v, b, h);
  float* s = scratch(0, pb.block * pb.S);
  for (int64_t a = 0; a < pb.T; a += pb.block) {
    const int64_t rows = std::min(pb.block, pb.T - a), kend = pb.keys_end(a, rows);
    block_scores(pb, b, h, a, rows, kend, s);
    for (int64_t i = 0; i < rows; ++i) softmax_row(s + i * kend, kend, stats + 2 * (a + i));
    gemm_rows('N', 'N', rows, pb.D, kend, 1.0f, s, kend, v.p, v.ld, 0.0f, out.row(a), out.ld);
  }
}

// Per block, with P = softmax(S) made again from the rows' stats: dV += P^T dO, dP = dO V^T, dS = P (dP - delta)
// with delta = rowsum(dO o) (softmax's backward), dQ = scale dS K, dK += scale dS^T Q.
void backward_head(const Problem& pb, int64_t b, int64_t h, const Rows& out, const Rows& dout, const float* stats,
                   const Rows& dq, const Rows& dk, const Rows& dv) {
  const Rows q = head_of(pb.q, b, h), k = head_of(pb.k, b, h), v = head_of(pb.v, b, h);
  for (int64_t j = 0; j < pb.S; ++j) {
    std::memset(dk.row(j), 0, sizeof(float) * pb.D);
    std::memset(dv.row(j), 0, sizeof(float) * pb.D);
  }
  float *p = scratch(0, pb.block * pb.S), *ds = scratch(1, pb.block * pb.S);
  for (int64_t a = 0; a < pb.T; a += pb.block) {
    const int64_t rows = std::min(pb.block, pb.T - a), kend = pb.keys_end(a, rows);
    block_scores(pb, b, h, a, rows, kend, p);
    for (int64_t i = 0; i < rows; ++i) probabilities_row(p + i * kend, kend, stats + 2 * (a + i));
    gemm_rows('T', 'N', kend, pb.D, rows, 1.0f, p, kend, dout.row(a), dout.ld, 1.0f, dv.p, dv.ld);
    gemm_rows('N', 'T', rows, kend, pb.D, 1.0f, dout.row(a), dout.ld, v.p, v.ld, 0.0f, ds, kend);
    for (int64_t i = 0; i < rows; ++i)
      softmax_grad_row(p + i * kend, ds + i * kend, kend, dot_product(dout.row(a + i), out.row(a + i), pb.D));
    gemm_rows('N', 'N', rows, pb.D, kend, pb.scale, ds, kend, k.p, k.ld, 0.0f, dq.row(a), dq.ld);
    gemm_rows('T', 'N', kend, pb.D, rows, pb.scale, ds, kend, q.row(a), q.ld, 1.0f, dk.p, dk.ld);
  }
}

// x with its last dimension's elements side by side and its rows (dimension row_dim) at least
// a row apart, as the BLAS reads them: x itself where it is so (a view of the projections'
// output, heads split), else a contiguous copy.
at::Tensor rows_ready(const at::Tensor& x, int64_t row_dim) {
  return x.stride(3) == 1 && x.stride(row_dim) >= x.size(3) ? x : x.contiguous();
}

class BlockedAttentionFn : public torch::autograd::Function<BlockedAttentionFn> {
 public:
  // -> (B,T,H,D) contiguous: the layout the heads are merged in afterwards.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& bias, double scale, bool causal, int64_t block) {
    const Problem pb{rows_ready(q, 2), rows_ready(k, 2), rows_ready(v, 2),
                     bias.numel() && bias.stride(3) != 1 ? bias.contiguous() : bias,
                     q.size(0), q.size(1), q.size(2), q.size(3), k.size(2), block, static_cast<float>(scale), causal};
    at::Tensor out = at::empty({pb.B, pb.T, pb.H, pb.D}, q.options());
    at::Tensor stats = at::empty({pb.B, pb.H, pb.T, 2}, q.options());
    float* stats_p = stats.data_ptr<float>();
    for_each_head(pb.B, pb.H, [&](int64_t b, int64_t h) {
      forward_head(pb, b, h, head_of_bthd(out, b, h), stats_p + (b * pb.H + h) * pb.T * 2);
    });
    ctx->save_for_backward({pb.q, pb.k, pb.v, pb.bias, out, stats});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["block"] = block;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const Problem pb{saved[0], saved[1], saved[2], saved[3],
                     saved[0].size(0), saved[0].size(1), saved[0].size(2), saved[0].size(3), saved[1].size(2),
                     ctx->saved_data["block"].toInt(), static_cast<float>(ctx->saved_data["scale"].toDouble()),
                     ctx->saved_data["causal"].toBool()};
    const at::Tensor &out = saved[4], &stats = saved[5];
    const at::Tensor dout = rows_ready(grads[0], 1);  // (B,T,H,D)
    const auto opts = out.options();
    at::Tensor dq = at::empty({pb.B, pb.T, pb.H, pb.D}, opts), dk = at::empty({pb.B, pb.S, pb.H, pb.D}, opts),
               dv = at::empty({pb.B, pb.S, pb.H, pb.D}, opts);
    const float* stats_p = stats.data_ptr<float>();
    for_each_head(pb.B, pb.H, [&](int64_t b, int64_t h) {
      const Rows d_out = {dout.data_ptr<float>() + b * dout.stride(0) + h * dout.stride(2), dout.stride(1)};
      backward_head(pb, b, h, head_of_bthd(out, b, h), d_out, stats_p + (b * pb.H + h) * pb.T * 2,
                    head_of_bthd(dq, b, h), head_of_bthd(dk, b, h), head_of_bthd(dv, b, h));
    });
    // (B,T,H,D) -> the inputs' (B,H,T,D)
    return {dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor blocked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                             double scale, bool causal, int64_t block) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                  q.size(1) == k.size(1) && q.size(3) == k.size(3),
              "blocked_attention: q (B,H,T,D), k and v (B,H,S,D) expected");
  TORCH_CHECK(q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat &&
                  q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "blocked_attention: float32 CPU tensors expected");
  TORCH_CHECK(!bias.defined() || (bias.dim() == 4 && bias.scalar_type() == at::kFloat &&
                                  (bias.size(0) == 1 || bias.size(0) == q.size(0)) &&
                                  (bias.size(1) == 1 || bias.size(1) == q.size(1)) &&
                                  (bias.size(2) == 1 || bias.size(2) == q.size(2)) && bias.size(3) == k.size(2)),
              "blocked_attention: bias (B or 1, 1 or H, T or 1, S) float32 expected");
  TORCH_CHECK(!causal || q.size(2) == k.size(2), "blocked_attention: causal attention needs as many keys as queries");
  // An empty tensor stands for no bias: autograd functions take defined tensors only.
  const at::Tensor out = BlockedAttentionFn::apply(q, k, v, bias.defined() ? bias : at::empty({0}, q.options()),
                                                   scale, causal, block > 0 ? block : kDefaultBlock);
  return out.transpose(1, 2);  // (B,T,H,D) -> (B,H,T,D): merging the heads back is then free
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                     double dropout_p, double scale, bool causal) {
  const bool fused = fusions().attention && loss_only() && dropout_p == 0 && q.device().is_cpu() &&
                     q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat &&
                     q.size(2) == k.size(2) && (!bias.defined() || bias.scalar_type() == at::kFloat);
  if (fused) return blocked_attention(q, k, v, bias, scale, causal);
  return compat::attention(q, k, v, bias, dropout_p, scale);
}

}  // namespace hftrain

#pragma GCC pop_options
