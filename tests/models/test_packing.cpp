// Packing (DataCollatorWithFlattening): documents in one row, position_ids restarting at each,
// give every model family the logits and the loss per token of the documents run one by one.
#include "hftrain/builtins.h"
#include "hftrain/data/collator.h"
#include "hftrain/models/hf_model_dir.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <catch2/catch.hpp>

using hftrain::test::golden;

TEST_CASE("a packed row equals its documents run separately: logits and loss per token, every causal family",
          "[unit][models][packing]") {
  hftrain::register_builtins();
  // Three documents of 5, 9 and 3 tokens; mistral's sliding window (8) is crossed inside the second.
  hftrain::Sequences docs = {{11, 7, 30, 2, 19}, {4, 25, 25, 8, 13, 1, 29, 6, 17}, {9, 3, 21}};
  for (const char* name : {"gpt2-clm", "llama-clm", "qwen2-clm", "mistral-clm", "phi3-clm", "gemma2-clm"}) {
    INFO(name);
    hftrain::ModelOptions opts;
    opts.pretrained = golden(std::string("models/") + name);
    std::shared_ptr<hftrain::Model> model = hftrain::model_create(opts);
    model->eval();
    at::NoGradGuard no_grad;
    // One row (HF's layout), and rows of at most 12 tokens: [doc 0, doc 2] and [doc 1, 1 pad].
    const hftrain::Batch one_row = hftrain::collate_flattened(docs);
    const hftrain::Batch rows = hftrain::collate_flattened(docs, nullptr, 12, 0);
    REQUIRE(one_row.at("position_ids").view(-1)[5].item<int64_t>() == 0);
    REQUIRE(rows.at("input_ids").sizes() == at::IntArrayRef({2, 9}));
    // Where each document sits: (row, first column) in each layout.
    const std::vector<std::pair<int64_t, int64_t>> in_one = {{0, 0}, {0, 5}, {0, 14}}, in_rows = {{0, 0}, {1, 0}, {0, 5}};
    for (const auto& [packed, where] : {std::pair{one_row, in_one}, std::pair{rows, in_rows}}) {
      const hftrain::ModelOutput p = model->forward(packed, std::nullopt);
      double loss_sum = 0;
      int64_t scored = 0;
      for (size_t k = 0; k < docs.size(); ++k) {
        std::vector<int64_t> ids(docs[k].begin(), docs[k].end());
        const at::Tensor row = at::tensor(ids, at::kLong).view({1, -1});
        const hftrain::ModelOutput one = model->forward({{"input_ids", row}, {"labels", row}}, std::nullopt);
        const int64_t n = static_cast<int64_t>(ids.size());
        const at::Tensor mine = p.logits[where[k].first].slice(0, where[k].second, where[k].second + n);
        CHECK((mine - one.logits[0]).abs().max().item<double>() <=
              1e-5 * std::max(1.0, one.logits.abs().max().item<double>()));
        loss_sum += one.loss.item<double>() * static_cast<double>(n - 1);  // its mean over n - 1 predictions
        scored += n - 1;
      }
      // The packed loss scores no token across a boundary, nor padding: the documents' mean per token.
      CHECK(std::abs(p.loss.item<double>() - loss_sum / static_cast<double>(scored)) <= 1e-5);
    }
  }
}
