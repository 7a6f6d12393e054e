#include "hftrain/data/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>

namespace hftrain {

BatchSampler::BatchSampler(at::Tensor order, int64_t batch_size, bool drop_last)
    : order_(std::move(order)), batch_size_(batch_size), num_batches_(count(order_.numel(), batch_size, drop_last)) {}

BatchSampler BatchSampler::random(int64_t n, int64_t batch_size, bool drop_last, int64_t seed, int64_t epoch) {
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed + epoch));
  return BatchSampler(at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)), batch_size, drop_last);
}

BatchSampler BatchSampler::sequential(int64_t n, int64_t batch_size) {
  return BatchSampler(at::arange(n, at::kLong), batch_size, false);
}

at::Tensor BatchSampler::batch(int64_t b) const {
  int64_t start = b * batch_size_;
  return order_.slice(0, start, std::min(start + batch_size_, order_.numel()));
}

}  // namespace hftrain
