#include "hftrain/data/loader.h"

namespace hftrain {

DataLoader::DataLoader(const LmDataset& data, BatchSampler sampler, int64_t first, int64_t end, int64_t workers,
                       int64_t prefetch_factor)
    : data_(data), sampler_(std::move(sampler)), next_take_(first), end_(end), next_claim_(first) {
  if (workers <= 0) return;
  slots_.resize(static_cast<size_t>(std::max<int64_t>(workers * prefetch_factor, 1)));
  for (int64_t w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  space_.notify_all();
  for (auto& t : threads_) t.join();
}

void DataLoader::work() {
  const int64_t n = static_cast<int64_t>(slots_.size());
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A batch may be claimed once the one n places before it has been taken.
      space_.wait(lock, [&] { return stop_ || next_claim_ >= end_ || next_claim_ < next_take_ + n; });
      if (stop_ || next_claim_ >= end_) return;
      b = next_claim_++;
    }
    Slot slot;
    try {
      slot.batch = data_.collate(sampler_.batch(b));
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      slots_[b % n] = std::move(slot);
    }
    ready_.notify_all();
  }
}

Batch DataLoader::next() {
  if (next_take_ >= end_) throw std::out_of_range("DataLoader::next past the epoch's last batch");
  if (threads_.empty()) return data_.collate(sampler_.batch(next_take_++));
  const int64_t n = static_cast<int64_t>(slots_.size());
  std::unique_lock<std::mutex> lock(mu_);
  Slot& slot = slots_[next_take_ % n];
  ready_.wait(lock, [&] { return slot.batch.has_value() || slot.error; });
  Slot taken = std::move(slot);
  slot = Slot{};
  ++next_take_;
  lock.unlock();
  space_.notify_all();
  if (taken.error) std::rethrow_exception(taken.error);
  return std::move(*taken.batch);
}

}  // namespace hftrain
