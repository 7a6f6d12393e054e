// Training order equals what the HF Trainer consumed (golden/trainer/sample_order.json).
#include "hftrain/data/sampler.h"
#include "test_util.h"

#include <catch2/catch.hpp>

using hftrain::test::golden;
using hftrain::test::read_json;

TEST_CASE("each epoch's order is randperm(n) from a generator seeded with seed + epoch, as HF's", "[unit][data]") {
  nlohmann::json order = read_json(golden("trainer/sample_order.json"));
  nlohmann::json c = read_json(golden("trainer/case.json"));
  const int64_t n = c["train"]["num_windows"], seed = c["training_args"]["seed"];
  const int64_t batch = c["training_args"]["per_device_train_batch_size"];
  const auto& epochs = order["epochs"];
  REQUIRE(epochs.size() >= 2);
  for (size_t e = 0; e < epochs.size(); ++e) {
    hftrain::BatchSampler s = hftrain::BatchSampler::random(n, batch, false, seed, static_cast<int64_t>(e));
    CHECK(s.size() == (n + batch - 1) / batch);
    std::vector<int64_t> got;
    for (int64_t b = 0; b < s.size(); ++b) {
      at::Tensor idx = s.batch(b);
      for (int64_t i = 0; i < idx.numel(); ++i) got.push_back(idx[i].item<int64_t>());
    }
    auto want = epochs[e].get<std::vector<int64_t>>();  // the last epoch may be cut short
    got.resize(want.size());
    INFO("epoch " << e);
    CHECK(got == want);
  }
}
