// The train loader: batches [first, end) of an epoch, in order, batch b being
// dataset.collate(sampler.batch(b)). With workers > 0 (dataloader_num_workers), worker
// threads collate up to workers * prefetch_factor batches ahead of the consumer, so the
// next step's data is ready when the step ends; the order never depends on the threads.
#pragma once

#include "hftrain/data/dataset.h"
#include "hftrain/data/sampler.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace hftrain {

class DataLoader {
 public:
  DataLoader(const LmDataset& data, BatchSampler sampler, int64_t first, int64_t end, int64_t workers,
             int64_t prefetch_factor);
  ~DataLoader();  // stops and joins the workers; batches not taken are dropped
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  Batch next();  // the next batch in order; a collate error is rethrown here

 private:
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  void work();

  const LmDataset& data_;
  BatchSampler sampler_;
  int64_t next_take_, end_;
  std::vector<Slot> slots_;  // batch b lives in slots_[b % size] while in flight
  int64_t next_claim_;       // the next batch a worker will collate
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::vector<std::thread> threads_;
};

}  // namespace hftrain
