#include "hftrain/kernels/linear_cross_entropy.h"

#include "hftrain/kernels/fusions.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace hftrain {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk: the chunk's logits about the size of the hidden states (Liger's rule), at
// least 64 rows so that each matmul stays efficient.
int64_t default_chunk_rows(int64_t n, int64_t d, int64_t v) {
  return std::clamp<int64_t>(n * d / std::max<int64_t>(v, 1), 64, std::max<int64_t>(n, 1));
}

class LinearCrossEntropyFn : public torch::autograd::Function<LinearCrossEntropyFn> {
 public:
  // by_count: divide by the count of labelled rows, else by `divisor`.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, bool by_count, double divisor, int64_t chunk) {
    const at::Tensor h = hidden.contiguous();  // (N,d)
    const at::Tensor w = weight.contiguous();  // (V,d)
    const int64_t n = h.size(0);
    const bool need_h = hidden.requires_grad(), need_w = weight.requires_grad();
    const at::Tensor valid = labels.ne(-100);                    // (N)
    const at::Tensor target = labels.clamp_min(0).unsqueeze(1);  // (N,1): -100 rows read id 0, then masked
    const at::TensorOptions f32 = h.options().dtype(at::kFloat);
    // 1 / divisor as a tensor: counting the labels needs no host read.
    // (HF's division by a num_items_in_batch of 0, or a mean over no labels, gives NaN; so does this.)
    const at::Tensor scale =
        (by_count ? valid.sum().to(at::kFloat) : at::scalar_tensor(divisor, f32)).reciprocal();
    at::Tensor loss = at::zeros({}, f32);
    at::Tensor grad_h = need_h ? at::empty_like(h) : at::Tensor();
    // The weight's gradient accumulates over the chunks in float32.
    at::Tensor grad_w = need_w ? at::zeros(w.sizes(), f32) : at::Tensor();
    for (int64_t a = 0; a < n; a += chunk) {
      const int64_t rows = std::min(chunk, n - a);
      const at::Tensor hc = h.narrow(0, a, rows);
      at::Tensor logits = at::mm(hc, w.t()).to(at::kFloat);  // (rows,V)
      const at::Tensor tc = target.narrow(0, a, rows);
      const at::Tensor vc = valid.narrow(0, a, rows).to(at::kFloat);
      // As cross_entropy computes it: log_softmax, then the negated picked entries.
      at::Tensor lsm = at::log_softmax(logits, 1);  // (rows,V)
      logits = at::Tensor();
      loss.sub_(lsm.gather(1, tc).squeeze(1).mul(vc).sum());
      if (!need_h && !need_w) continue;
      // d loss / d logits = (softmax - onehot(label)) * scale on labelled rows, 0 elsewhere.
      at::Tensor g = lsm.exp_();
      g.scatter_add_(1, tc, at::full({rows, 1}, -1.0, f32));
      g.mul_(vc.mul(scale).unsqueeze(1));
      if (g.scalar_type() != h.scalar_type()) g = g.to(h.scalar_type());
      if (need_h) {
        at::Tensor out = grad_h.narrow(0, a, rows);
        at::mm_out(out, g, w);
      }
      if (need_w) grad_w.addmm_(g.t().to(at::kFloat), hc.to(at::kFloat));
    }
    if (need_w && grad_w.scalar_type() != weight.scalar_type()) grad_w = grad_w.to(weight.scalar_type());
    // Kept as plain data (no autograd bookkeeping) and handed over in backward, so that the
    // weight's gradient accumulator may take the tensor instead of copying it.
    ctx->saved_data["grad_hidden"] = grad_h;
    ctx->saved_data["grad_weight"] = grad_w;
    return loss.mul_(scale);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor& g = grads[0];  // 0-d
    variable_list out(6);
    for (auto [key, i] : {std::pair<const char*, size_t>{"grad_hidden", 0}, {"grad_weight", 1}}) {
      const auto it = ctx->saved_data.find(key);
      TORCH_CHECK(it != ctx->saved_data.end(), "linear_cross_entropy: backward runs once (retain_graph is not supported)");
      at::Tensor t = it->second.isTensor() ? it->second.toTensor() : at::Tensor();
      ctx->saved_data.erase(it);
      // Scaled in place: the gradients were made for this one backward.
      if (t.defined()) out[i] = t.mul_(g.to(t.scalar_type()));
    }
    return out;
  }
};

}  // namespace

bool fuse_lm_head_loss(const at::Tensor& hidden, const at::Tensor& weight) {
  // Below 4 x the width the logits are no larger than a few hidden states, and the chunked
  // pass measured slower than the unfused head (bench_step, vocabulary 256 at width 256).
  return fusions().lm_head_loss && loss_only() && hidden.device().is_cpu() && weight.size(0) >= 4 * weight.size(1);
}

at::Tensor linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                std::optional<double> num_items_in_batch, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "linear_cross_entropy: hidden (N,d) and weight (V,d) expected");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0), "linear_cross_entropy: labels (N) expected");
  const int64_t chunk =
      chunk_rows > 0 ? chunk_rows : default_chunk_rows(hidden.size(0), hidden.size(1), weight.size(0));
  return LinearCrossEntropyFn::apply(hidden, weight, labels.to(at::kLong), !num_items_in_batch,
                                     num_items_in_batch.value_or(1.0), chunk);
}

at::Tensor causal_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                       std::optional<double> num_items_in_batch) {
  const int64_t B = hidden.size(0), T = hidden.size(1), d = hidden.size(2);
  const at::Tensor l = labels.to(hidden.device(), at::kLong);
  const at::Tensor shifted = at::cat({l.slice(1, 1), at::full({B, 1}, -100, l.options())}, 1);  // (B,T)
  return linear_cross_entropy(hidden.reshape({B * T, d}), weight, shifted.view({-1}), num_items_in_batch);
}

}  // namespace hftrain
