// Where a run computes: HF's TrainingArguments.device. cuda:LOCAL_RANK when this LibTorch has
// CUDA, a GPU is visible and use_cpu is not set; the CPU otherwise.
#pragma once

#include "hftrain/core/batch.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace hftrain {

// LibTorch was built with CUDA and sees at least one GPU.
bool cuda_available();

// The run's device. local_rank picks the GPU of a data parallel rank on its machine; a rank
// beyond the visible GPUs is a user error naming both numbers.
c10::Device training_device(bool use_cpu, int64_t local_rank);

// Why the run is on the CPU, for messages that need a GPU ("use_cpu is set", ...).
std::string cpu_reason(bool use_cpu);

// The batch on `device`. To a GPU, the copies are queued from pinned memory (the host does
// not wait for them: HF's dataloader_pin_memory with non_blocking transfers); on the CPU the
// batch is returned as it is.
Batch batch_to(Batch batch, c10::Device device);

// A device's default random generator state, as torch.get_rng_state() (CPU) and
// torch.cuda.get_rng_state(i) give it (uint8 tensors), and its restore.
at::Tensor generator_state(c10::Device device);
void set_generator_state(c10::Device device, const at::Tensor& state);

}  // namespace hftrain
