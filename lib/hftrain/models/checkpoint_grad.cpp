#include "hftrain/models/checkpoint_grad.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/models/model.h"
#include "hftrain/core/torch_compat_autograd.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

namespace hftrain {

namespace {

// The RNG states a block's dropout drew from (the CPU's, and its GPU's when it runs on
// one), so that the recompute draws the same masks, as torch.utils.checkpoint preserves them.
struct RngStates {
  c10::Device device = c10::Device(c10::kCPU);
  at::Tensor cpu, gpu;

  static RngStates capture(c10::Device device) {
    RngStates s;
    s.device = device;
    s.cpu = generator_state(c10::Device(c10::kCPU));
    if (!device.is_cpu()) s.gpu = generator_state(device);
    return s;
  }
  void restore() const {
    set_generator_state(c10::Device(c10::kCPU), cpu);
    if (gpu.defined()) set_generator_state(device, gpu);
  }
};

struct CheckpointBackward : torch::autograd::Node {
  std::function<at::Tensor(const at::Tensor&)> fn;
  at::Tensor input;
  RngStates rng;

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    if (!grads[0].defined()) return {at::Tensor()};
    at::Tensor x = input.detach().requires_grad_(true);
    at::Tensor y;
    const RngStates now = RngStates::capture(rng.device);
    rng.restore();
    {
      at::AutoGradMode enable(true);
      y = fn(x);
    }
    now.restore();
    // Reentrant backward through the recomputed block: its parameters' .grad accumulate here,
    // and x.grad is what flows on to the blocks before it.
    torch::autograd::backward({y}, {grads[0]});
    fn = nullptr;  // the closure holds the block's other inputs; they are done
    input.reset();
    return {x.grad()};
  }
};

}  // namespace

at::Tensor checkpointed(const std::function<at::Tensor(const at::Tensor&)>& fn, const at::Tensor& x) {
  if (!at::GradMode::is_enabled() || !x.requires_grad()) return fn(x);
  auto node = compat::make_node<CheckpointBackward>();
  node->fn = fn;
  node->input = x.detach();
  node->rng = RngStates::capture(x.device());
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = fn(x);
  }
  torch::autograd::set_history(y, node);
  return y;
}

at::Tensor Model::forward_cached(const at::Tensor&, KvCache&) {
  fail("{} has no KV cache for incremental decoding", model_type());
}

at::Tensor Model::run_block(size_t i, const BlockFn& fn, const at::Tensor& x) {
  if (!block_runner_) return checkpointing() ? checkpointed(fn, x) : fn(x);
  // The runner sees the block as it runs now, recompute included: a fully sharded run's
  // parameters are gathered again for the recompute in backward.
  const BlockFn run = [&](const at::Tensor& t) { return checkpointing() ? checkpointed(fn, t) : fn(t); };
  return block_runner_(i, run, x);
}

}  // namespace hftrain
