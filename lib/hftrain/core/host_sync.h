// Reads of device values by the host (tensor.item()) in the training loop go through
// host_read, which counts them: bench/ reports the count per optimizer step (the loop's rule:
// none per micro-step, and only when logging).
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>

namespace hftrain {

inline std::atomic<int64_t>& host_sync_counter() {
  static std::atomic<int64_t> n{0};
  return n;
}

template <typename T>
T host_read(const at::Tensor& t) {
  host_sync_counter().fetch_add(1, std::memory_order_relaxed);
  return t.item<T>();
}

// Several values at once: one host read of `t` as float64 on the CPU.
inline at::Tensor host_copy(const at::Tensor& t) {
  host_sync_counter().fetch_add(1, std::memory_order_relaxed);
  return t.to(at::kDouble).cpu();
}

}  // namespace hftrain
