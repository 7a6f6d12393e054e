// Training order equals what the HF Trainer consumed (golden/trainer/sample_order.json).
#include "hftrain/data/sampler.h"
#include "test_util.h"

#include <ATen/Functions.h>
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

TEST_CASE("group_by_length orders as transformers' get_length_grouped_indices on the same randperm",
          "[unit][data][python]") {
  hftrain::test::python_torch_available();
  hftrain::test::TempDir dir("grouped");
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < 203; ++i) lengths.push_back(1 + (i * 37) % 64);  // ties included
  const int64_t batch = 4, group = 8, seed = 11, epoch = 2;
  hftrain::BatchSampler s = hftrain::BatchSampler::length_grouped(lengths, batch, group, false, seed, epoch);
  std::vector<int64_t> got;
  for (int64_t b = 0; b < s.size(); ++b) {
    at::Tensor idx = s.batch(b);
    for (int64_t i = 0; i < idx.numel(); ++i) got.push_back(idx[i].item<int64_t>());
  }
  // trainer_pt_utils.get_length_grouped_indices, with the generator hftrain seeds.
  const std::string script = R"(
import json, sys, torch
lengths = json.loads(sys.argv[1]); batch_size = 8
g = torch.Generator(); g.manual_seed(13)
mega_batch_mult = min(len(lengths) // (batch_size * 4), 50) or 1
indices = torch.randperm(len(lengths), generator=g)
megabatch_size = mega_batch_mult * batch_size
megabatches = [indices[i : i + megabatch_size].tolist() for i in range(0, len(lengths), megabatch_size)]
megabatches = [sorted(m, key=lambda i: lengths[i], reverse=True) for m in megabatches]
maxima = [lengths[m[0]] for m in megabatches]
max_idx = torch.argmax(torch.tensor(maxima)).item()
megabatches[0][0], megabatches[max_idx][0] = megabatches[max_idx][0], megabatches[0][0]
print(json.dumps([i for m in megabatches for i in m]))
)";
  auto r = hftrain::test::run_python(dir.str(), script, "'" + nlohmann::json(lengths).dump() + "'");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(got == nlohmann::json::parse(r.output).get<std::vector<int64_t>>());
  CHECK(lengths[got[0]] == 64);  // the longest example leads, so an out-of-memory shows at once
}

TEST_CASE("sharding deals batches to ranks as accelerate's BatchSamplerShard does", "[unit][data]") {
  auto shards = [](int64_t n, int64_t bs, bool drop_last, int64_t world) {
    std::vector<std::vector<std::vector<int64_t>>> out;
    hftrain::BatchSampler all(at::arange(n, at::kLong), bs, drop_last);
    for (int64_t r = 0; r < world; ++r) {
      hftrain::BatchSampler s = all.shard(r, world);
      out.emplace_back();
      for (int64_t b = 0; b < s.size(); ++b) {
        at::Tensor t = s.batch(b).contiguous();
        out.back().emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
      }
    }
    return out;
  };
  using S = std::vector<std::vector<std::vector<int64_t>>>;
  // Expected values of accelerate's tests/test_data_loader.py (test_batch_sampler_shards_with_no_splits).
  CHECK(shards(24, 3, false, 2) == S{{{0, 1, 2}, {6, 7, 8}, {12, 13, 14}, {18, 19, 20}},
                                     {{3, 4, 5}, {9, 10, 11}, {15, 16, 17}, {21, 22, 23}}});
  CHECK(shards(21, 3, false, 2) == S{{{0, 1, 2}, {6, 7, 8}, {12, 13, 14}, {18, 19, 20}},
                                     {{3, 4, 5}, {9, 10, 11}, {15, 16, 17}, {0, 1, 2}}});
  CHECK(shards(22, 3, false, 2) == S{{{0, 1, 2}, {6, 7, 8}, {12, 13, 14}, {18, 19, 20}},
                                     {{3, 4, 5}, {9, 10, 11}, {15, 16, 17}, {21, 0, 1}}});
  CHECK(shards(20, 3, false, 2) == S{{{0, 1, 2}, {6, 7, 8}, {12, 13, 14}, {18, 19, 0}},
                                     {{3, 4, 5}, {9, 10, 11}, {15, 16, 17}, {1, 2, 3}}});
  CHECK(shards(21, 3, true, 2) == S{{{0, 1, 2}, {6, 7, 8}, {12, 13, 14}}, {{3, 4, 5}, {9, 10, 11}, {15, 16, 17}}});
  CHECK(shards(2, 3, false, 2) == S{{{0, 1, 0}}, {{1, 0, 1}}});  // fewer samples than one round
}
