#include "hftrain/dist/grad_reducer.h"

#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat_autograd.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>

namespace hftrain {

GradReducer::GradReducer(ProcessGroup& pg, std::vector<at::Tensor> params, int64_t bucket_cap_bytes,
                         int64_t first_bucket_bytes)
    : pg_(pg), params_(std::move(params)), bucket_of_(params_.size()), ready_(params_.size(), 0) {
  HFT_CHECK(bucket_cap_bytes > 0, "ddp_bucket_cap_mb must be > 0");
  // DDP's compute_bucket_assignment_by_size over the reversed parameters: one open bucket per
  // dtype, closed once it holds at least the cap.
  std::vector<std::pair<at::ScalarType, size_t>> open;  // dtype -> index in buckets_
  std::vector<int64_t> bytes;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    HFT_CHECK(p.requires_grad() && p.is_leaf(), "parameter {} is not a leaf that requires a gradient", k);
    auto it = std::find_if(open.begin(), open.end(), [&](const auto& e) { return e.first == p.scalar_type(); });
    if (it == open.end()) {
      buckets_.emplace_back();
      bytes.push_back(0);
      open.emplace_back(p.scalar_type(), buckets_.size() - 1);
      it = open.end() - 1;
    }
    Bucket& b = buckets_[it->second];
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(k);
    bucket_of_[k] = it->second;
    bytes[it->second] += p.numel() * static_cast<int64_t>(p.element_size());
    const int64_t cap = it->second == 0 ? first_bucket_bytes : bucket_cap_bytes;
    if (bytes[it->second] >= cap) open.erase(it);
  }
  for (Bucket& b : buckets_) {
    const at::Tensor& last = params_[b.params.back()];
    b.buffer = at::empty({b.offsets.back() + last.numel()}, last.options().requires_grad(false));
    b.pending = b.params.size();
  }
  // A post hook on each parameter's gradient accumulator runs once the gradient of this
  // backward is in param.grad().
  for (size_t k = 0; k < params_.size(); ++k) {
    compat::NodePtr acc = torch::autograd::impl::grad_accumulator(params_[k]);
    uintptr_t key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_gradient(k);
          return outputs;
        }));
    unhook_.emplace_back([acc = std::move(acc), key] { acc->del_post_hook(key); });
  }
}

GradReducer::~GradReducer() {
  for (auto& unhook : unhook_) unhook();
}

void GradReducer::broadcast_parameters(int64_t root) {
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    for (size_t i = 0; i < b.params.size(); ++i) {
      const at::Tensor& p = params_[b.params[i]];
      b.buffer.narrow(0, b.offsets[i], p.numel()).copy_(p.reshape(-1));
    }
    std::vector<at::Tensor> t{b.buffer};
    pg_.broadcast(t, root);
    for (size_t i = 0; i < b.params.size(); ++i) {
      at::Tensor p = params_[b.params[i]];
      p.copy_(b.buffer.narrow(0, b.offsets[i], p.numel()).view_as(p));
    }
  }
}

void GradReducer::prepare(bool sync) {
  std::lock_guard<std::mutex> lock(mu_);
  sync_ = sync;
}

void GradReducer::on_gradient(size_t param) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!sync_) return;
  Bucket& b = buckets_[bucket_of_[param]];
  if (ready_[param]) {
    // A second gradient for the same parameter in one backward (a weight used inside and
    // outside a recomputed segment): the bucket is reduced again once backward is over.
    b.late = b.late || b.launched;
    return;
  }
  ready_[param] = 1;
  if (--b.pending == 0) launch_in_order();
}

void GradReducer::launch_in_order() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) launch(buckets_[next_bucket_++]);
}

void GradReducer::launch(Bucket& b) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < b.params.size(); ++i) {
    const at::Tensor& p = params_[b.params[i]];
    at::Tensor slot = b.buffer.narrow(0, b.offsets[i], p.numel());
    const at::Tensor& g = p.grad();
    if (g.defined()) slot.copy_(g.reshape(-1));
    else slot.zero_();
  }
  b.buffer.div_(static_cast<double>(pg_.world_size()));
  b.launched = true;
  b.work = pg_.all_reduce_sum_async(b.buffer);
}

void GradReducer::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!sync_) return;
  // Parameters that got no gradient count as zero: their buckets go now, in order.
  for (Bucket& b : buckets_) b.pending = 0;
  launch_in_order();
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    b.work.wait();
    if (b.late) {
      launch(b);
      b.work.wait();
    }
    for (size_t i = 0; i < b.params.size(); ++i) {
      at::Tensor p = params_[b.params[i]];
      at::Tensor reduced = b.buffer.narrow(0, b.offsets[i], p.numel()).view_as(p);
      if (p.grad().defined()) p.mutable_grad().copy_(reduced);
      else p.mutable_grad() = reduced.clone();
    }
    b.pending = b.params.size();
    b.launched = b.late = false;
  }
  std::fill(ready_.begin(), ready_.end(), 0);
  next_bucket_ = 0;
  sync_ = false;
}

}  // namespace hftrain
