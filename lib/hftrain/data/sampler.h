// Which windows each batch holds. Training order is torch's RandomSampler as accelerate's
// SeedableRandomSampler drives it: each epoch e draws randperm(n) from a fresh CPU
// generator seeded with seed + e (seed = data_seed, else seed). Evaluation is sequential.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace hftrain {

class BatchSampler {
 public:
  // order: int64 (n) window indices; the last batch may be short unless drop_last.
  BatchSampler(at::Tensor order, int64_t batch_size, bool drop_last);
  static BatchSampler random(int64_t n, int64_t batch_size, bool drop_last, int64_t seed, int64_t epoch);
  static BatchSampler sequential(int64_t n, int64_t batch_size);
  // transformers' LengthGroupedSampler (get_length_grouped_indices): the epoch's randperm
  // cut into megabatches of mega_batch_mult * group_size (mult = min(n / (group_size * 4),
  // 50), at least 1), each sorted longest first (stable), the megabatch holding the longest
  // example moved to the front. group_size is train_batch_size * gradient_accumulation_steps,
  // as the Trainer passes it. The randperm comes from the same seed + epoch generator as
  // random(); transformers draws it from the global RNG, which no config can reproduce.
  static BatchSampler length_grouped(const std::vector<int64_t>& lengths, int64_t batch_size, int64_t group_size,
                                     bool drop_last, int64_t seed, int64_t epoch);
  // Batches of n windows: ceil(n / batch_size), or floor with drop_last (len(dataloader)).
  static int64_t count(int64_t n, int64_t batch_size, bool drop_last) {
    return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
  }

  // This process's batches of a data parallel run, as accelerate's BatchSamplerShard
  // (split_batches false, even_batches true) deals them: batch i goes to rank i % world;
  // without drop_last, the ranks short of a full batch are topped up from the epoch's first
  // batches, so that every rank takes the same number of full batches.
  BatchSampler shard(int64_t rank, int64_t world) const;

  int64_t size() const { return num_batches_; }  // len(dataloader)
  at::Tensor batch(int64_t b) const;             // window indices of batch b, by index: O(1)

 private:
  at::Tensor order_;
  int64_t batch_size_, num_batches_;
  bool drop_last_;
};

}  // namespace hftrain
