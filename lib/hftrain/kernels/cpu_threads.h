// Elementwise work between matrix products, on every core this process has.
//
// hftrain keeps LibTorch's intra-op pool at one thread when OpenBLAS runs its own pool
// (core/torch_compat.h: set_default_threads), because the two pools' spinning threads take
// the cores from each other. So ATen's elementwise kernels run on one core. The fused kernels
// use these threads instead: they sleep on a condition variable between calls rather than
// spin, so OpenBLAS keeps the cores during the products.
#pragma once

#include <cstdint>
#include <functional>

namespace hftrain {

// The threads a call uses: this process's share of the cores (as set_default_threads
// divides them), OMP_NUM_THREADS where the user set it.
int cpu_threads();

// fn(begin, end) over [0, n), in chunks of `grain` taken in turn by cpu_threads() threads (the
// caller is one). Runs inline when one thread would do, when called from inside another
// call's fn, or while another thread's call is running. The first exception a chunk throws is
// rethrown here, after every chunk has finished or been skipped.
void cpu_parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace hftrain
