// HFTRAIN_CPU_MEMORY_LIMIT: a cap on the bytes LibTorch's CPU tensors hold at once (a number
// with an optional K, M or G suffix). An allocation past it fails as the CPU allocator fails
// when the machine is out of memory ("DefaultCPUAllocator: can't allocate memory"), so that a
// run can be held to less memory than the machine has: to share it, or to try
// auto_find_batch_size.
#pragma once

#include <cstdint>
#include <string>

namespace hftrain {

// Installs the cap when the variable is set (a malformed value is a user error naming it).
void install_cpu_memory_limit_from_env();

// Whether an exception's message is an out-of-memory that a smaller batch may avoid
// (accelerate's should_reduce_batch_size: CUDA, cuDNN and CPU allocator failures).
bool is_out_of_memory(const std::string& message);

}  // namespace hftrain
