#include "hftrain/core/torch_compat.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>

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
  unsigned n = std::thread::hardware_concurrency();
  if (n > 0) at::set_num_threads(static_cast<int>(n));
}

}  // namespace hftrain::compat
