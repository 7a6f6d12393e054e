#include "hftrain/core/torch_compat.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>

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
  if (std::getenv("OMP_NUM_THREADS")) return;  // the user's choice wins
  int n = static_cast<int>(std::thread::hardware_concurrency());
  // The processes of a data parallel run on this machine share its cores.
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE"); local && std::atoi(local) > 1) n /= std::atoi(local);
  at::set_num_threads(std::max(n, 1));
}

}  // namespace hftrain::compat
