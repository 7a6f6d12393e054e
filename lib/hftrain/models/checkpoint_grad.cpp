#include "hftrain/models/checkpoint_grad.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <mutex>

namespace hftrain {

namespace {

// The RNG state a block's dropout drew from, so that the recompute draws the same masks.
at::Tensor cpu_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_cpu_rng_state(const at::Tensor& s) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s);
}

struct CheckpointBackward : torch::autograd::Node {
  std::function<at::Tensor(const at::Tensor&)> fn;
  at::Tensor input, rng_state;

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    if (!grads[0].defined()) return {at::Tensor()};
    at::Tensor x = input.detach().requires_grad_(true);
    at::Tensor y;
    const at::Tensor now = cpu_rng_state();
    set_cpu_rng_state(rng_state);
    {
      at::AutoGradMode enable(true);
      y = fn(x);
    }
    set_cpu_rng_state(now);
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
  auto node = std::shared_ptr<CheckpointBackward>(new CheckpointBackward(), torch::autograd::deleteNode);
  node->fn = fn;
  node->input = x.detach();
  node->rng_state = cpu_rng_state();
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = fn(x);
  }
  torch::autograd::set_history(y, node);
  return y;
}

}  // namespace hftrain
