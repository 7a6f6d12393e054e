// Every difference between LibTorch versions lives here (DESIGN.md §5): Debian's CPU
// LibTorch 1.13 and a CUDA LibTorch 2.x from a PyTorch installation. The autograd Node
// pointer is in torch_compat_autograd.h, whose headers are too heavy for this one.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/version.h>

#include <optional>
#include <string>

namespace c10d {
struct TCPStoreOptions;
}

// Whether this LibTorch is version major.minor or newer: the one test every difference uses.
#define HFTRAIN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace hftrain::compat {

constexpr bool kHasSdpa = HFTRAIN_TORCH_AT_LEAST(2, 0);

// softmax(q k^T * scale + bias) v. q (B,H,T,D), k/v (B,H,S,D); bias is additive,
// broadcastable to (B,H,T,S), large negative where masked (causal and padding);
// dropout_p applies to the attention probabilities (training only).
// LibTorch 2.x: at::scaled_dot_product_attention (flash / memory-efficient kernels on
// CUDA); 1.13: the exact math, as transformers' eager attention computes it.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double dropout_p, double scale);

// This process's share of the cores: all of them, divided among the processes of a data
// parallel run on this machine (LOCAL_WORLD_SIZE); OMP_NUM_THREADS where the user set it.
int process_cores();

// Threads for this process: all cores (the processes of a data parallel run on one machine,
// LOCAL_WORLD_SIZE, split them), unless OMP_NUM_THREADS says otherwise. With a pthreads
// OpenBLAS, its pool gets the cores and LibTorch's intra-op pool one thread (see the .cpp).
void set_default_threads();

// OpenBLAS's pool threads sleep as soon as a product ends instead of spinning for a tenth of a
// second, so the cores are free for the work between products (see the .cpp), unless the user
// set OPENBLAS_THREAD_TIMEOUT. Does nothing with another BLAS.
void blas_workers_sleep_between_products();

// Freed tensor memory stays in the process for the next step instead of going back to the
// kernel (glibc malloc's thresholds; see the .cpp), unless the user set glibc's malloc
// tunables. Off glibc, nothing.
void keep_freed_memory();
// Hands the memory freed so far back to the kernel, once, at a point where what is free will
// not be needed again in the same shapes (after the first backward: its activations and
// temporaries, before the optimizer's state is made). Off glibc, nothing.
void return_freed_memory();

// Whether /proc/cpuinfo lists this CPU flag ("avx512f", "avx512_bf16", ...); false off Linux.
bool cpu_has_flag(const std::string& flag);

// The name of the kernel set OpenBLAS dispatches to ("Haswell", "SkylakeX", ...), or "" when
// the BLAS is not a DYNAMIC_ARCH OpenBLAS.
std::string blas_kernels();

// `hftrain env`: versions, the CPU, the BLAS kernels and the thread counts, as "- key: value"
// lines (after configure_host()).
std::string describe_host();

// What every hftrain process does first: blas_workers_sleep_between_products(),
// set_default_threads() and keep_freed_memory().
void configure_host();

// Whether autocast is on for the CPU here (a kernel of hftrain's own that runs float32
// products itself must then leave them to ATen, which autocast recasts).
bool cpu_autocast_enabled();

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

// torch.optim.AdamW(fused=True)'s kernel, at::_fused_adamw_: in LibTorch 2.4 and later, for
// the CPU and CUDA. It reads each parameter's step from `steps` (float32, on its device),
// which the caller has already incremented. Elsewhere a runtime error.
constexpr bool kHasFusedAdamW = HFTRAIN_TORCH_AT_LEAST(2, 4);
void fused_adamw_(c10::ArrayRef<at::Tensor> params, c10::ArrayRef<at::Tensor> grads, c10::ArrayRef<at::Tensor> exp_avgs,
                  c10::ArrayRef<at::Tensor> exp_avg_sqs, c10::ArrayRef<at::Tensor> max_exp_avg_sqs,
                  c10::ArrayRef<at::Tensor> steps, double lr, double beta1, double beta2, double weight_decay,
                  double eps, bool amsgrad);

// The rendezvous store's server: LibTorch 2.4+ defaults to a libuv server, which builds
// without libuv (Debian's) refuse; the classic server works in every build. USE_LIBUV=1 asks
// for libuv, as torch's Python launcher reads it.
void tcp_store_defaults(c10d::TCPStoreOptions& options);

// HF's tf32: TensorFloat-32 in CUDA matmuls and cuDNN convolutions (no effect on the CPU).
void set_tf32(bool on);

}  // namespace hftrain::compat
