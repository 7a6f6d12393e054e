#include "hftrain/predict_input.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/examples.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/io/atomic_file.h"

#include <ATen/Functions.h>

#include <algorithm>
#include <filesystem>

namespace hftrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Whether a classifier's input carries labels: its first row (its header) has the label field.
bool first_row_has(const DatasetOptions& d, const std::string& field) {
  if (d.format == DatasetFormat::kText) return false;
  const std::string text = io::read_file(dataset_files(d.path, "--input").front());
  if (d.format != DatasetFormat::kJsonl) {
    size_t pos = 0;
    const auto header = csv_record(text, pos, d.format == DatasetFormat::kCsv ? ',' : '\t');
    return std::find(header.begin(), header.end(), field) != header.end();
  }
  const json first = json::parse(text.substr(0, text.find('\n')), nullptr, /*allow_exceptions=*/false);
  return first.is_object() && first.contains(field);
}

// id2label's names, else transformers' LABEL_k for each of num_labels.
std::vector<std::string> class_names(const json& hf) {
  std::vector<std::string> names;
  const int64_t n = hf.contains("id2label") && hf["id2label"].is_object() && !hf["id2label"].empty()
                        ? static_cast<int64_t>(hf["id2label"].size())
                        : hf.value("num_labels", json(2)).get<int64_t>();
  for (int64_t k = 0; k < n; ++k) {
    const std::string key = std::to_string(k);
    names.push_back(hf.contains("id2label") && hf["id2label"].contains(key) && hf["id2label"][key].is_string()
                        ? hf["id2label"][key].get<std::string>()
                        : "LABEL_" + key);
  }
  return names;
}

at::Tensor int_tensor(const std::vector<int32_t>& v) {
  return at::from_blob(const_cast<int32_t*>(v.data()), {static_cast<int64_t>(v.size())}, at::kInt).clone();
}

}  // namespace

DatasetOptions input_dataset_options(const std::string& input, const Config& config, bool by_line) {
  DatasetOptions d = config.data.train;
  d.path = input;
  d.prompt_field.clear();
  const std::string ext = fs::path(input).extension().string();
  d.format = ext == ".jsonl" ? DatasetFormat::kJsonl
             : ext == ".csv" ? DatasetFormat::kCsv
             : ext == ".tsv" ? DatasetFormat::kTsv
                             : DatasetFormat::kText;
  d.sample_by = by_line ? SampleBy::kLine : SampleBy::kDocument;
  d.keep_linebreaks = !by_line;
  return d;
}

PredictInput predict_input(const Config& config, const Tokenizer& tok, const json& hf, ModelTask task,
                           const std::string& input, uint64_t seed) {
  PredictInput in;
  in.task = task;
  const DatasetOptions d = input_dataset_options(input, config, task != ModelTask::kCausalLM);
  const bool classify = task == ModelTask::kSequenceClassification;
  if (classify) in.labelled = first_row_has(d, d.label_field);
  // Blank lines are no examples (run_mlm's line_by_line drops them); indexes stay the input's.
  std::vector<Example> rows;
  std::vector<int64_t> row_index;
  int64_t read = 0;
  for (Example& e : examples_read(d, "--input", in.labelled)) {
    const int64_t at = read++;
    const bool blank = !e.tokenized && !e.prompt && e.text.find_first_not_of(" \t\r\n") == std::string::npos;
    if (blank && task != ModelTask::kCausalLM) continue;
    rows.push_back(std::move(e));
    row_index.push_back(at);
  }
  std::vector<int32_t> ids, labels;
  std::vector<int64_t> offsets{0};
  const int64_t vocab = hf.value("vocab_size", json(tok.vocab_size())).get<int64_t>();
  const auto tokenized = tokenize_examples(rows, tok, 0, input);
  for (size_t e = 0; e < rows.size(); ++e) {
    const std::vector<int32_t>& v = tokenized[e];
    for (size_t t = 0; t < v.size(); ++t)
      HFT_CHECK(v[t] >= 0 && v[t] < vocab, "{}: example {} (from 0), token {}: id {} is not below the model's "
                "vocab_size {}", input, row_index[e], t, v[t], vocab);
    ids.insert(ids.end(), v.begin(), v.end());
    offsets.push_back(static_cast<int64_t>(ids.size()));
    if (task != ModelTask::kTokenClassification) continue;
    if (e == 0) in.labelled = rows[e].labels.has_value();
    HFT_CHECK(rows[e].labels.has_value() == in.labelled, "{}: example {} (from 0) {} per-token \"labels\" but the "
              "first {}", input, row_index[e], in.labelled ? "has no" : "has", in.labelled ? "does" : "does not");
    if (!in.labelled) {
      labels.insert(labels.end(), v.size(), -100);  // nothing to score: the loss is not reported
      continue;
    }
    const std::vector<int32_t>& l = *rows[e].labels;  // examples_read checked that they line up
    labels.insert(labels.end(), l.begin(), l.end());
  }
  HFT_CHECK(!ids.empty(), "{}: no tokens to predict on", input);
  const at::Tensor id_tensor = int_tensor(ids), offset_tensor = at::tensor(offsets, at::kLong);
  if (task == ModelTask::kCausalLM) {
    // The tokens cut into block_size windows, as the model was trained; a shorter input is one
    // window of what it has.
    HFT_CHECK(ids.size() >= 2, "{}: {} token, a causal LM needs two to predict one", input, ids.size());
    in.labelled = true;
    in.data = std::make_shared<TokenWindows>(id_tensor.to(at::kLong),
                                             std::min<int64_t>(config.data.block_size, static_cast<int64_t>(ids.size())));
    for (int64_t i = 0; i < in.data->size(); ++i) in.example.push_back(i);
    return in;
  }
  PadOptions pad;
  pad.pad_token_id = hf.value("pad_token_id", json(nullptr)).is_number_integer() ? hf["pad_token_id"].get<int64_t>()
                                                                               : padding_id(tok);
  pad.pad_to_multiple_of = config.data.pad_to_max_length ? config.data.block_size : config.data.pad_to_multiple_of;
  const auto n = static_cast<int64_t>(rows.size());
  std::shared_ptr<TokenSequences> seqs;
  if (classify || task == ModelTask::kTokenClassification) {
    in.names = class_names(hf);
    at::Tensor classes;
    if (classify) {
      std::vector<int64_t> c;
      for (const Example& e : rows) {
        auto it = std::find(in.names.begin(), in.names.end(), e.label);
        HFT_CHECK(!in.labelled || it != in.names.end(), "{}: label \"{}\" is not one of the model's classes ({})",
                  input, e.label, join(in.names, ", "));
        c.push_back(in.labelled ? it - in.names.begin() : 0);
      }
      classes = at::tensor(c, at::kLong);
    }
    const at::Tensor label_tensor = labels.empty() ? at::Tensor() : int_tensor(labels);
    if (in.labelled && label_tensor.defined()) {
      const auto num = static_cast<int32_t>(in.names.size());
      for (size_t t = 0; t < labels.size(); ++t)
        HFT_CHECK(labels[t] == -100 || (labels[t] >= 0 && labels[t] < num), "{}: label {} is not one of the model's "
                  "{} classes (or -100)", input, labels[t], num);
    }
    seqs = std::make_shared<TokenSequences>(id_tensor, label_tensor, offset_tensor, 0, n, config.data.block_size,
                                            tok.num_special_tokens_after(), pad, classes);
    in.data = seqs;
  } else {  // masked LM
    const MlmOptions mlm = mlm_options(config.data, tok);
    in.own_masks = std::find(ids.begin(), ids.end(), static_cast<int32_t>(mlm.mask_token_id)) != ids.end();
    if (in.own_masks) {
      // Every label -100: no loss; the masks' predictions are the output.
      seqs = std::make_shared<TokenSequences>(id_tensor, at::full({id_tensor.numel()}, -100, at::kInt), offset_tensor,
                                              0, n, config.data.block_size, tok.num_special_tokens_after(), pad);
      in.data = seqs;
    } else {
      // Masked as the evaluation masks (its seed), scored against the ids it hid.
      seqs = std::make_shared<TokenSequences>(id_tensor, at::Tensor(), offset_tensor, 0, n, config.data.block_size,
                                              tok.num_special_tokens_after(), pad);
      in.data = std::make_shared<MaskedLmDataset>(seqs, mlm, seed + 1);
      in.labelled = true;
    }
  }
  HFT_CHECK(seqs->size() > 0, "{}: no non-empty examples", input);
  for (int64_t i = 0; i < seqs->size(); ++i) in.example.push_back(row_index.at(seqs->example(i)));
  return in;
}

std::string predict_lines(const PredictInput& in, const Tokenizer& tok,
                          const std::vector<std::vector<int64_t>>& predictions) {
  std::string lines;
  auto as_vector = [](const at::Tensor& t) {
    const at::Tensor c = t.to(at::kLong).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  };
  for (size_t i = 0; i < predictions.size(); ++i) {
    json row{{"index", in.example.at(i)}};
    const std::vector<int64_t>& p = predictions[i];
    switch (in.task) {
      case ModelTask::kCausalLM:
        row["predicted_ids"] = p;
        row["predicted_text"] = tok.decode(p);
        break;
      case ModelTask::kSequenceClassification: {
        const int64_t k = p.at(0);
        row["predicted_id"] = k;
        row["predicted_label"] = k < static_cast<int64_t>(in.names.size()) ? json(in.names[k]) : json(nullptr);
        if (in.labelled) row["label"] = in.names.at(static_cast<size_t>(in.data->collate(at::tensor({int64_t(i)}))
                                                                            .at("labels")[0].item<int64_t>()));
        break;
      }
      case ModelTask::kTokenClassification:
      case ModelTask::kMaskedLM: {
        // The row alone, unpadded: its ids (masked as the model saw them) and labels.
        const Batch b = in.data->collate(at::tensor({static_cast<int64_t>(i)}));
        const std::vector<int64_t> ids = as_vector(b.at("input_ids")[0]), gold = as_vector(b.at("labels")[0]);
        const std::vector<int64_t> mask = as_vector(b.at("attention_mask")[0]);
        std::vector<int64_t> keep;  // positions of real tokens
        for (size_t t = 0; t < ids.size(); ++t)
          if (mask[t]) keep.push_back(static_cast<int64_t>(t));
        if (in.task == ModelTask::kTokenClassification) {
          json input_ids = json::array(), pred = json::array(), names = json::array(), gold_names = json::array();
          for (int64_t t : keep) {
            input_ids.push_back(ids[t]);
            pred.push_back(p.at(t));
            names.push_back(p[t] < static_cast<int64_t>(in.names.size()) ? json(in.names[p[t]]) : json(nullptr));
            gold_names.push_back(gold[t] >= 0 ? json(in.names.at(gold[t])) : json(nullptr));
          }
          row["input_ids"] = input_ids;
          row["predicted_ids"] = pred;
          row["predicted_labels"] = names;
          if (in.labelled) row["labels"] = gold_names;
          break;
        }
        // Masked LM: each masked position's prediction, and the row with them filled in.
        const int64_t mask_id = tok.special_token_id("mask_token").value_or(-1);
        json positions = json::array(), pred = json::array(), truth = json::array();
        std::vector<int64_t> filled;
        for (int64_t t : keep) {
          const bool masked = in.own_masks ? ids[t] == mask_id : gold[t] != -100;
          filled.push_back(masked ? p.at(t) : ids[t]);
          if (!masked) continue;
          positions.push_back(t);
          pred.push_back(p.at(t));
          if (!in.own_masks) truth.push_back(gold[t]);
        }
        std::vector<int64_t> input_ids;
        for (int64_t t : keep) input_ids.push_back(ids[t]);
        row["input_ids"] = input_ids;
        row["masked_positions"] = positions;
        row["predicted_ids"] = pred;
        if (!in.own_masks) row["labels"] = truth;
        row["filled_ids"] = filled;
        row["filled_text"] = tok.decode(filled);
        break;
      }
    }
    lines += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  return lines;
}

}  // namespace hftrain
