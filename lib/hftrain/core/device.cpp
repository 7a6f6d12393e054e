#include "hftrain/core/device.h"

#include "hftrain/core/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/cuda.h>

#include <mutex>

namespace hftrain {

bool cuda_available() { return torch::cuda::is_available(); }

c10::Device training_device(bool use_cpu, int64_t local_rank) {
  if (use_cpu || !cuda_available()) return c10::Device(c10::kCPU);
  const auto gpus = static_cast<int64_t>(torch::cuda::device_count());
  HFT_CHECK(local_rank < gpus, "local rank {} has no GPU of its own: this machine shows {} (CUDA_VISIBLE_DEVICES); "
            "start at most {} processes per machine, or set use_cpu", local_rank, gpus, gpus);
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

std::string cpu_reason(bool use_cpu) {
  if (use_cpu) return "use_cpu is set";
  if (!at::hasCUDA()) return "this hftrain build's LibTorch has no CUDA";
  return "no CUDA device is visible";
}

Batch batch_to(Batch batch, c10::Device device) {
  if (device.is_cpu()) return batch;
  for (auto& [name, t] : batch) t = t.pin_memory().to(device, /*non_blocking=*/true);
  return batch;
}

namespace {

at::Generator default_generator(c10::Device device) {
  if (device.is_cpu()) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(device);
}

}  // namespace

at::Tensor generator_state(c10::Device device) {
  at::Generator gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(c10::Device device, const at::Tensor& state) {
  at::Generator gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace hftrain
