#include "hftrain/core/torch_compat.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace hftrain::compat {

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double dropout_p, double scale) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, bias, dropout_p, /*is_causal=*/false, scale);
#else
  at::Tensor w = at::matmul(q, k.transpose(-1, -2)).mul(scale);  // (B,H,T,S)
  if (bias.defined()) w = w.add(bias);
  w = at::softmax(w, -1);
  if (dropout_p > 0) w = at::dropout(w, dropout_p, /*train=*/true);
  return at::matmul(w, v);  // (B,H,T,D)
#endif
}

void set_default_threads() {
  if (std::getenv("OMP_NUM_THREADS")) return;  // the user's choice wins (OpenBLAS reads it too)
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  // The processes of a data parallel run on this machine share its cores.
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE"); local && std::atoi(local) > 1) cores /= std::atoi(local);
  cores = std::max(cores, 1);
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

}  // namespace hftrain::compat
