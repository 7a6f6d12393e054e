// Collators: HF's padding layout, and masked-LM masking drawn exactly as transformers'
// DataCollatorForLanguageModeling draws it (checked against Python torch's generator).
#include "hftrain/data/collator.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

using hftrain::test::TempDir;

namespace {
std::vector<int64_t> row(const at::Tensor& t, int64_t b) {
  at::Tensor r = t[b].contiguous();
  return {r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel()};
}
}  // namespace

TEST_CASE("padding pads to the longest or a multiple, with attention_mask and -100 labels", "[unit][data]") {
  hftrain::Sequences ids = {{5, 6, 7}, {8}};
  hftrain::PadOptions pad;
  pad.pad_token_id = 1;
  hftrain::Batch b = hftrain::collate_padded(ids, pad);
  CHECK(row(b["input_ids"], 1) == std::vector<int64_t>{8, 1, 1});
  CHECK(row(b["attention_mask"], 1) == std::vector<int64_t>{1, 0, 0});
  pad.pad_to_multiple_of = 4;
  pad.left = true;
  hftrain::Sequences labels = {{0, 2, 1}, {3}};  // token classification tags
  b = hftrain::collate_padded(ids, pad, &labels);
  CHECK(row(b["input_ids"], 0) == std::vector<int64_t>{1, 5, 6, 7});
  CHECK(row(b["labels"], 1) == std::vector<int64_t>{-100, -100, -100, 3});
  pad.left = false;
  pad.pad_to_multiple_of = 0;
  b = hftrain::collate_lm(ids, pad);  // mlm=False: labels are the ids, padding -100
  CHECK(row(b["labels"], 1) == std::vector<int64_t>{8, -100, -100});
}

TEST_CASE("MLM masking draws as transformers' DataCollatorForLanguageModeling on torch's generator",
          "[unit][data][python]") {
  hftrain::test::python_torch_available();
  TempDir dir("mlm");
  hftrain::Sequences ids;
  for (int b = 0; b < 4; ++b) {
    std::vector<int32_t> s = {101};
    for (int t = 0; t < 30 + 7 * b; ++t) s.push_back(1000 + (b * 131 + t * 17) % 5000);
    s.push_back(102);
    ids.push_back(s);
  }
  hftrain::PadOptions pad;
  hftrain::MlmOptions mlm;
  mlm.mask_token_id = 103;
  mlm.vocab_size = 30522;
  mlm.special_token_ids = {0, 100, 101, 102, 103};
  at::manual_seed(1234);
  hftrain::Batch b = hftrain::collate_mlm(ids, pad, mlm);
  // transformers' torch_mask_tokens, on the batch DataCollatorWithPadding makes.
  const std::string script = R"(
import json, sys, torch
ids = json.loads(sys.argv[1])
T = max(len(s) for s in ids)
inputs = torch.tensor([s + [0] * (T - len(s)) for s in ids])
torch.manual_seed(1234)
labels = inputs.clone()
probability_matrix = torch.full(labels.shape, 0.15)
special = torch.tensor([[t in (0, 100, 101, 102, 103) for t in r] for r in labels.tolist()])
probability_matrix.masked_fill_(special, value=0.0)
masked_indices = torch.bernoulli(probability_matrix).bool()
labels[~masked_indices] = -100
indices_replaced = torch.bernoulli(torch.full(labels.shape, 0.8)).bool() & masked_indices
inputs[indices_replaced] = 103
indices_random = torch.bernoulli(torch.full(labels.shape, 0.5)).bool() & masked_indices & ~indices_replaced
random_words = torch.randint(30522, labels.shape, dtype=torch.long)
inputs[indices_random] = random_words[indices_random]
print(json.dumps({"input_ids": inputs.tolist(), "labels": labels.tolist()}))
)";
  nlohmann::json arg = ids;
  auto r = hftrain::test::run_python(dir.str(), script, "'" + arg.dump() + "'");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto want = nlohmann::json::parse(r.output);
  int64_t masked = 0;
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(row(b["input_ids"], i) == want["input_ids"][i].get<std::vector<int64_t>>());
    CHECK(row(b["labels"], i) == want["labels"][i].get<std::vector<int64_t>>());
    for (int64_t v : row(b["labels"], i)) masked += v != -100;
  }
  CHECK(masked > 5);  // the comparison covers real masking, not an all -100 batch
}
