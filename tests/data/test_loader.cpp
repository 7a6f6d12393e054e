// The loader's worker threads change when a batch is collated, never which batch comes next.
#include "hftrain/core/error.h"
#include "hftrain/data/loader.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

namespace {

// Windows whose first token is the window index: a batch's content names its windows.
hftrain::TokenWindows numbered(int64_t windows, int64_t block) {
  return hftrain::TokenWindows(at::arange(windows, at::kLong).repeat_interleave(block), block);
}

struct Failing : hftrain::LmDataset {
  hftrain::TokenWindows inner = numbered(40, 4);
  int64_t size() const override { return inner.size(); }
  int64_t num_tokens() const override { return inner.num_tokens(); }
  int64_t length(int64_t i) const override { return 4; }
  hftrain::Batch collate(const at::Tensor& idx) const override {
    if (idx.eq(17).any().item<bool>()) hftrain::fail("window 17 is unreadable");
    return inner.collate(idx);
  }
};

}  // namespace

TEST_CASE("loader workers yield the sampler's batches in order, from any first batch", "[unit][data]") {
  hftrain::TokenWindows data = numbered(103, 8);
  auto order = [&](int64_t workers, int64_t prefetch, int64_t first) {
    hftrain::BatchSampler sampler = hftrain::BatchSampler::random(data.size(), 5, false, 3, 1);
    hftrain::DataLoader loader(data, sampler, first, sampler.size(), workers, prefetch);
    std::vector<int64_t> seen;
    for (int64_t b = first; b < sampler.size(); ++b) {
      hftrain::Batch batch = loader.next();
      at::Tensor ids = batch.at("input_ids");
      CHECK(ids.select(1, 0).equal(sampler.batch(b)));  // batch b holds exactly sampler.batch(b)
      for (int64_t i = 0; i < ids.size(0); ++i) seen.push_back(ids[i][0].item<int64_t>());
    }
    CHECK_THROWS(loader.next());
    return seen;
  };
  const std::vector<int64_t> serial = order(0, 2, 0);
  CHECK(serial.size() == 103);
  CHECK(order(1, 1, 0) == serial);
  CHECK(order(3, 2, 0) == serial);
  CHECK(order(4, 4, 7) == std::vector<int64_t>(serial.begin() + 35, serial.end()));
}

TEST_CASE("a collate error in a worker reaches the consumer at that batch", "[unit][data]") {
  Failing data;
  hftrain::BatchSampler sampler = hftrain::BatchSampler::sequential(data.size(), 4);  // window 17 is in batch 4
  hftrain::DataLoader loader(data, sampler, 0, sampler.size(), 2, 2);
  for (int b = 0; b < 4; ++b) loader.next();
  CHECK_THROWS_WITH(loader.next(), Catch::Contains("window 17"));
  // Destroying a loader whose workers are waiting for space neither hangs nor crashes.
  hftrain::DataLoader early(data, sampler, 0, sampler.size(), 3, 1);
  early.next();
}
