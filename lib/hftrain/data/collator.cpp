#include "hftrain/data/collator.h"

#include "hftrain/core/error.h"

#include <ATen/Functions.h>

#include <algorithm>

namespace hftrain {

Batch collate_causal_lm(const at::Tensor& input_ids) { return {{"input_ids", input_ids}, {"labels", input_ids}}; }

int64_t count_label_tokens(const Batch& batch) {
  const at::Tensor& labels = batch.at("labels");
  return labels.slice(1, 1).ne(-100).sum().item<int64_t>();
}

namespace {

// (B, T) of `seqs` padded with `fill`, T the longest rounded up to pad_to_multiple_of.
at::Tensor pad_to_tensor(const Sequences& seqs, int64_t fill, const PadOptions& pad, int64_t length) {
  at::Tensor out = at::full({static_cast<int64_t>(seqs.size()), length}, fill, at::kLong);
  auto acc = out.accessor<int64_t, 2>();
  for (size_t b = 0; b < seqs.size(); ++b) {
    const int64_t n = static_cast<int64_t>(seqs[b].size()), start = pad.left ? length - n : 0;
    for (int64_t t = 0; t < n; ++t) acc[b][start + t] = seqs[b][t];
  }
  return out;
}

int64_t padded_length(const Sequences& seqs, const PadOptions& pad) {
  int64_t longest = 0;
  for (const auto& s : seqs) longest = std::max<int64_t>(longest, s.size());
  if (pad.pad_to_multiple_of > 0) longest = (longest + pad.pad_to_multiple_of - 1) / pad.pad_to_multiple_of * pad.pad_to_multiple_of;
  return longest;
}

}  // namespace

Batch collate_padded(const Sequences& input_ids, const PadOptions& pad, const Sequences* labels) {
  HFT_CHECK(!input_ids.empty(), "collate: an empty batch");
  const int64_t length = padded_length(input_ids, pad);
  Batch batch{{"input_ids", pad_to_tensor(input_ids, pad.pad_token_id, pad, length)}};
  Sequences ones(input_ids.size());
  for (size_t b = 0; b < input_ids.size(); ++b) ones[b].assign(input_ids[b].size(), 1);
  batch["attention_mask"] = pad_to_tensor(ones, 0, pad, length);
  if (labels) {
    HFT_CHECK(labels->size() == input_ids.size(), "collate: {} label rows for {} examples", labels->size(), input_ids.size());
    batch["labels"] = pad_to_tensor(*labels, -100, pad, length);
  }
  return batch;
}

Batch collate_lm(const Sequences& input_ids, const PadOptions& pad) {
  Batch batch = collate_padded(input_ids, pad);
  batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"].eq(0), -100);
  return batch;
}

Batch collate_flattened(const Sequences& input_ids, const Sequences* labels, int64_t max_row, int64_t pad_id) {
  struct Row {
    std::vector<int64_t> ids, positions, targets;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < input_ids.size(); ++i) {
    const auto& s = input_ids[i];
    const auto& l = labels ? (*labels)[i] : s;
    const auto n = static_cast<int64_t>(s.size());
    auto fits = [&](const Row& r) { return max_row == 0 || static_cast<int64_t>(r.ids.size()) + n <= max_row; };
    auto it = std::find_if(rows.begin(), rows.end(), fits);
    Row& r = it != rows.end() ? *it : rows.emplace_back();
    for (int64_t t = 0; t < n; ++t) {
      r.ids.push_back(s[t]);
      r.positions.push_back(t);
      r.targets.push_back(t == 0 ? -100 : l[t]);
    }
  }
  size_t width = 0;
  for (const Row& r : rows) width = std::max(width, r.ids.size());
  std::vector<int64_t> ids, positions, targets;
  for (const Row& r : rows) {
    const size_t pad = width - r.ids.size();
    ids.insert(ids.end(), r.ids.begin(), r.ids.end());
    ids.insert(ids.end(), pad, pad_id);
    positions.insert(positions.end(), r.positions.begin(), r.positions.end());
    positions.insert(positions.end(), pad, 0);  // each pad its own one-token document
    targets.insert(targets.end(), r.targets.begin(), r.targets.end());
    targets.insert(targets.end(), pad, -100);
  }
  const auto B = static_cast<int64_t>(rows.size()), T = static_cast<int64_t>(width);
  return {{"input_ids", at::tensor(ids, at::kLong).view({B, T})},
          {"position_ids", at::tensor(positions, at::kLong).view({B, T})},
          {"labels", at::tensor(targets, at::kLong).view({B, T})}};
}

Batch collate_mlm(const Sequences& input_ids, const PadOptions& pad, const MlmOptions& mlm) {
  Batch batch = collate_padded(input_ids, pad);
  mask_tokens(batch, mlm);
  return batch;
}

void mask_tokens(Batch& batch, const MlmOptions& mlm, at::Generator gen) {
  HFT_CHECK(mlm.mask_token_id >= 0, "masked language modelling needs a tokenizer with a mask_token");
  const c10::optional<at::Generator> g = gen.defined() ? c10::optional<at::Generator>(gen) : c10::nullopt;
  at::Tensor inputs = batch.at("input_ids").clone();
  at::Tensor labels = inputs.clone();
  auto mask_it = batch.find("attention_mask");
  at::Tensor special = mask_it != batch.end() ? mask_it->second.eq(0) : at::zeros(labels.sizes(), at::kBool);
  for (int64_t id : mlm.special_token_ids) special.logical_or_(labels.eq(id));
  at::Tensor probability = at::full(labels.sizes(), mlm.mlm_probability, at::kFloat).masked_fill_(special, 0.0);
  at::Tensor masked = at::bernoulli(probability, g).to(at::kBool);
  labels.masked_fill_(masked.logical_not(), -100);
  at::Tensor replaced = at::bernoulli(at::full(labels.sizes(), 0.8, at::kFloat), g).to(at::kBool).logical_and_(masked);
  inputs.masked_fill_(replaced, mlm.mask_token_id);
  at::Tensor random = at::bernoulli(at::full(labels.sizes(), 0.5, at::kFloat), g).to(at::kBool)
                          .logical_and_(masked).logical_and_(replaced.logical_not());
  at::Tensor words = at::randint(mlm.vocab_size, labels.sizes(), g, at::kLong);
  batch["input_ids"] = at::where(random, words, inputs);
  batch["labels"] = labels;
}

}  // namespace hftrain
