#include "hftrain/core/torch_compat.h"

#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <dlfcn.h>
#include <torch/version.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>

namespace hftrain::compat {

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double dropout_p, double scale) {
#if HFTRAIN_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, bias, dropout_p, /*is_causal=*/false, scale);
#else
  at::Tensor w = at::matmul(q, k.transpose(-1, -2)).mul(scale);  // (B,H,T,S)
  if (bias.defined()) w = w.add(bias);
  w = at::softmax(w, -1);
  if (dropout_p > 0) w = at::dropout(w, dropout_p, /*train=*/true);
  return at::matmul(w, v);  // (B,H,T,D)
#endif
}

void fused_adamw_(c10::ArrayRef<at::Tensor> params, c10::ArrayRef<at::Tensor> grads, c10::ArrayRef<at::Tensor> exp_avgs,
                  c10::ArrayRef<at::Tensor> exp_avg_sqs, c10::ArrayRef<at::Tensor> max_exp_avg_sqs,
                  c10::ArrayRef<at::Tensor> steps, double lr, double beta1, double beta2, double weight_decay,
                  double eps, bool amsgrad) {
#if HFTRAIN_TORCH_AT_LEAST(2, 4)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, weight_decay, eps,
                    amsgrad, /*maximize=*/false);
#else
  TORCH_CHECK(false, "the fused AdamW kernel needs LibTorch 2.4 or newer");
#endif
}

void tcp_store_defaults(c10d::TCPStoreOptions& options) {
#if HFTRAIN_TORCH_AT_LEAST(2, 3)
  const char* uv = std::getenv("USE_LIBUV");
  options.useLibUV = uv && std::strcmp(uv, "1") == 0;
#else
  (void)options;  // no libuv server before 2.3
#endif
}

void set_tf32(bool on) {
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

int process_cores() {
  if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) > 0) return std::atoi(omp);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  // The processes of a data parallel run on this machine share its cores.
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE"); local && std::atoi(local) > 1) cores /= std::atoi(local);
  return std::max(cores, 1);
}

void set_default_threads() {
  if (std::getenv("OMP_NUM_THREADS")) return;  // the user's choice wins (OpenBLAS reads it too)
  const int cores = process_cores();
  // Debian's OpenBLAS (pthreads) runs matrix products on a thread pool of its own, beside
  // LibTorch's OpenMP pool; with both as wide as the machine, their spinning threads take the
  // cores from each other (bench_trainer's steps up to 2.3x slower). So when BLAS has its
  // own pool, products use it on every core and LibTorch's other operations run on one thread.
  using GetParallel = int (*)();
  using SetThreads = void (*)(int);
  auto blas_parallel = reinterpret_cast<GetParallel>(::dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  auto blas_threads = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  const bool blas_pool = blas_parallel && blas_threads && blas_parallel() == 1;
  at::set_num_threads(blas_pool ? 1 : cores);
  if (blas_pool && !std::getenv("OPENBLAS_NUM_THREADS")) blas_threads(cores);
}

namespace {
bool g_blas_workers_sleep = false;  // set by blas_workers_sleep_between_products()
}  // namespace

void blas_workers_sleep_between_products() {
  // Once per process: the variable is unset again below, so a second call would not see it.
  if (g_blas_workers_sleep || std::getenv("OPENBLAS_THREAD_TIMEOUT")) return;  // the user's choice wins
  // OpenBLAS's pool threads spin (sched_yield) for 2^28 cycles, about a tenth of a second,
  // after each product before they sleep. Between the products of a training step there is
  // never that long, so they would hold every core but the caller's for the whole step, and the
  // fused kernels' threads (kernels/cpu_threads.h) would get half a core each. With
  // OPENBLAS_THREAD_TIMEOUT at its minimum (4: 16 cycles) they sleep as soon as a product ends
  // and are woken by the next (bench_step: the small GPT-2's step 0.88x). OpenBLAS reads the
  // variable when it starts its pool, which it did when it was loaded: so it is set, read,
  // and the pool started again (nothing runs on it yet), then unset so that child processes
  // (Python baselines among them) start as they would have.
  using Fn = void (*)();
  using IntFn = int (*)();
  auto read_env = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_read_env"));
  auto shutdown = reinterpret_cast<IntFn>(::dlsym(RTLD_DEFAULT, "blas_thread_shutdown_"));
  auto init = reinterpret_cast<IntFn>(::dlsym(RTLD_DEFAULT, "blas_thread_init"));
  if (!read_env || !shutdown || !init) return;
  ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
  read_env();
  shutdown();
  init();
  ::unsetenv("OPENBLAS_THREAD_TIMEOUT");
  g_blas_workers_sleep = true;
}

void keep_freed_memory() {
#if defined(__GLIBC__)
  // The user's malloc settings win.
  if (const char* t = std::getenv("GLIBC_TUNABLES"); t && std::strstr(t, "glibc.malloc.")) return;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) return;
  // A training step frees and allocates the same activation sizes again and again. glibc
  // gives blocks over its mmap threshold back to the kernel on free, and trims the heap's
  // top, so each step would fault those pages in again (zeroed) and pay a TLB shootdown per
  // unmap. Blocks up to 32 MiB (glibc's ceiling for the threshold) now stay in the heap for
  // the next step, and the heap is not trimmed: the process keeps its peak, as PyTorch's
  // CUDA caching allocator does on a GPU.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
#endif
}

void return_freed_memory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

#if HFTRAIN_TORCH_AT_LEAST(2, 4)
namespace {
bool autocast_enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void autocast_enable(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
at::ScalarType autocast_dtype(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void autocast_set_dtype(c10::DeviceType d, at::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
}  // namespace
#else
namespace {
bool autocast_enabled(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void autocast_enable(c10::DeviceType d, bool on) {
  d == c10::DeviceType::CPU ? at::autocast::set_cpu_enabled(on) : at::autocast::set_enabled(on);
}
at::ScalarType autocast_dtype(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void autocast_set_dtype(c10::DeviceType d, at::ScalarType t) {
  d == c10::DeviceType::CPU ? at::autocast::set_autocast_cpu_dtype(t) : at::autocast::set_autocast_gpu_dtype(t);
}
}  // namespace
#endif

bool cpu_autocast_enabled() { return autocast_enabled(c10::DeviceType::CPU); }

AutocastGuard::AutocastGuard(c10::DeviceType device, at::ScalarType dtype) : device_(device) {
  if (dtype == at::kFloat) return;
  active_ = true;
  was_enabled_ = autocast_enabled(device);
  was_dtype_ = autocast_dtype(device);
  autocast_enable(device, true);
  autocast_set_dtype(device, dtype);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // As torch.autocast's __exit__: the cast weights are dropped when the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  autocast_enable(device_, was_enabled_);
  autocast_set_dtype(device_, was_dtype_);
}

namespace {

// /proc/cpuinfo's first "key : value" for `key` ("" off Linux or where absent).
std::string cpuinfo(const std::string& key) {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    k.erase(k.find_last_not_of(" \t") + 1);
    if (k == key) return line.substr(std::min(line.size(), colon + 2));
  }
  return "";
}

}  // namespace

bool cpu_has_flag(const std::string& flag) {
  return (" " + cpuinfo("flags") + " ").find(" " + flag + " ") != std::string::npos;
}

std::string blas_kernels() {
  using CoreName = char* (*)();
  auto corename = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "gotoblas_corename"));
  return corename ? corename() : "";
}

std::string describe_host() {
  std::string out = std::string("- hftrain version: ") + HFTRAIN_VERSION + "\n";
  out += std::string("- LibTorch version: ") + TORCH_VERSION + "\n";
  out += std::string("- CUDA available: ") + (at::hasCUDA() ? "yes" : "no") + "\n";
  const std::string model = cpuinfo("model name");
  out += "- CPU: " + (model.empty() ? std::string("unknown") : model) + ", " +
         std::to_string(std::thread::hardware_concurrency()) + " logical cores; flags:";
  for (const char* f : {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    if (cpu_has_flag(f)) out += std::string(" ") + f;
  out += "\n";
  const std::string kernels = blas_kernels();
  out += "- BLAS: ";
  if (kernels.empty()) {
    out += "not a DYNAMIC_ARCH OpenBLAS (kernels not reported)";
  } else {
    out += "OpenBLAS, " + kernels + " kernels";
    if (const char* forced = std::getenv("OPENBLAS_CORETYPE")) {
      out += std::string(" (OPENBLAS_CORETYPE=") + forced + ")";
      // An AVX2 kernel set pinned on an AVX-512 CPU: float32 matmuls run at about 0.7x of what
      // OpenBLAS would pick itself (bench_step on a Zen 5).
      const bool avx2_set = kernels == "Haswell" || kernels == "Zen" || kernels == "Sandybridge";
      if (avx2_set && cpu_has_flag("avx512f"))
        out += "; this CPU has AVX-512, for which OpenBLAS has faster kernels: unset OPENBLAS_CORETYPE to use them";
    }
  }
  out += "\n";
  out += "- threads: LibTorch intra-op " + std::to_string(at::get_num_threads());
  using GetThreads = int (*)();
  if (auto blas_threads = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
    out += ", OpenBLAS " + std::to_string(blas_threads());
  if (g_blas_workers_sleep) out += " (its workers sleep as soon as a product ends, as with OPENBLAS_THREAD_TIMEOUT=4)";
  return out + "\n";
}

void configure_host() {
  blas_workers_sleep_between_products();
  set_default_threads();
  keep_freed_memory();
}

}  // namespace hftrain::compat
