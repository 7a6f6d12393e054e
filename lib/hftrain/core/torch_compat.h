// Every difference between LibTorch versions lives here (DESIGN.md §5): Debian's CPU
// LibTorch 1.13 and a CUDA LibTorch 2.x from a PyTorch installation.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/version.h>

#include <optional>

namespace hftrain::compat {

constexpr bool kHasSdpa = TORCH_VERSION_MAJOR >= 2;

// softmax(q k^T * scale + bias) v. q (B,H,T,D), k/v (B,H,S,D); bias is additive,
// broadcastable to (B,H,T,S), large negative where masked (causal and padding);
// dropout_p applies to the attention probabilities (training only).
// LibTorch 2.x: at::scaled_dot_product_attention (flash / memory-efficient kernels on
// CUDA); 1.13: the exact math, as transformers' eager attention computes it.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double dropout_p, double scale);

// Threads for this process: all cores (the processes of a data parallel run on one machine,
// LOCAL_WORLD_SIZE, split them), unless OMP_NUM_THREADS says otherwise. With a pthreads
// OpenBLAS, its pool gets the cores and LibTorch's intra-op pool one thread (see the .cpp).
void set_default_threads();

// Freed tensor memory stays in the process for the next step instead of going back to the
// kernel (glibc malloc's thresholds; see the .cpp), unless the user set glibc's malloc
// tunables. Off glibc, nothing.
void keep_freed_memory();

// What every hftrain process does first: set_default_threads() and keep_freed_memory().
void configure_host();

// torch.autocast(device_type, dtype) for a scope: eligible ops (matmuls, linear layers) run in
// `dtype`, the rest as autocast's lists say. Disabled (no effect) when dtype is float32.
// LibTorch 2.4 names the switches per device type; earlier versions per device.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, at::ScalarType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace hftrain::compat
