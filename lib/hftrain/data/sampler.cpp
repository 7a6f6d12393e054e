#include "hftrain/data/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>

#include <algorithm>

namespace hftrain {

BatchSampler::BatchSampler(at::Tensor order, int64_t batch_size, bool drop_last)
    : order_(std::move(order)),
      batch_size_(batch_size),
      num_batches_(count(order_.numel(), batch_size, drop_last)),
      drop_last_(drop_last) {}

BatchSampler BatchSampler::shard(int64_t rank, int64_t world) const {
  if (world == 1) return *this;
  std::vector<int64_t> mine, initial, pending, last;
  const int64_t bs = batch_size_;
  int64_t idx = -1;
  for (int64_t b = 0; b < num_batches_; ++b) {
    idx = b;
    at::Tensor t = batch(b).contiguous();
    last.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    if (!drop_last_ && b < world) initial.insert(initial.end(), last.begin(), last.end());
    if (b % world == rank) pending = last;
    // A round is dealt once its last rank has a full batch.
    if (b % world == world - 1 && static_cast<int64_t>(last.size()) == bs) {
      mine.insert(mine.end(), pending.begin(), pending.end());
      pending.clear();
    }
  }
  if (!drop_last_ && !initial.empty()) {
    if (static_cast<int64_t>(pending.size()) == bs) mine.insert(mine.end(), pending.begin(), pending.end());
    while (static_cast<int64_t>(initial.size()) < world * bs) initial.insert(initial.end(), initial.begin(), initial.end());
    if (static_cast<int64_t>(last.size()) == bs) {
      last.clear();
      ++idx;
    }
    // Top up the short batch, then whole batches from the start, until the round is complete.
    size_t cycle = 0;
    while (idx % world != 0 || !last.empty()) {
      const size_t end = cycle + bs - last.size();
      last.insert(last.end(), initial.begin() + cycle, initial.begin() + end);
      if (idx % world == rank) mine.insert(mine.end(), last.begin(), last.end());
      cycle = end;
      last.clear();
      ++idx;
    }
  }
  return BatchSampler(at::tensor(mine, at::kLong), bs, true);
}

BatchSampler BatchSampler::random(int64_t n, int64_t batch_size, bool drop_last, int64_t seed, int64_t epoch) {
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed + epoch));
  return BatchSampler(at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)), batch_size, drop_last);
}

BatchSampler BatchSampler::length_grouped(const std::vector<int64_t>& lengths, int64_t batch_size,
                                          int64_t group_size, bool drop_last, int64_t seed, int64_t epoch) {
  const int64_t n = static_cast<int64_t>(lengths.size());
  const int64_t mult = std::max<int64_t>(std::min<int64_t>(n / (group_size * 4), 50), 1);
  const int64_t mega = mult * group_size;
  at::Tensor perm = random(n, batch_size, drop_last, seed, epoch).order_;
  std::vector<int64_t> order(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
  size_t longest_group = 0;
  int64_t longest = -1;
  for (int64_t start = 0; start < n; start += mega) {
    auto first = order.begin() + start, last = order.begin() + std::min(n, start + mega);
    std::stable_sort(first, last, [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    if (lengths[*first] > longest) longest = lengths[*first], longest_group = start;  // the first maximum
  }
  if (n > 0) std::swap(order[0], order[longest_group]);
  return BatchSampler(at::tensor(order, at::kLong), batch_size, drop_last);
}

BatchSampler BatchSampler::sequential(int64_t n, int64_t batch_size) {
  return BatchSampler(at::arange(n, at::kLong), batch_size, false);
}

at::Tensor BatchSampler::batch(int64_t b) const {
  int64_t start = b * batch_size_;
  return order_.slice(0, start, std::min(start + batch_size_, order_.numel()));
}

}  // namespace hftrain
