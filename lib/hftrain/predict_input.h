// `hftrain predict`'s input, made into the rows the model's task predicts on, and its
// predictions written back as one JSON line per row.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/core/task.h"
#include "hftrain/data/dataset.h"
#include "hftrain/data/tokenizer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

struct PredictInput {
  ModelTask task = ModelTask::kCausalLM;
  std::shared_ptr<const LmDataset> data;
  // The rows carry what they should be (a class, per-token classes; a causal LM's and a
  // masked LM without [MASK] in its input always do): the loss and metrics are reported.
  bool labelled = false;
  // Masked LM: the input holds [MASK] tokens, which are filled (no loss: nothing says what
  // they were). Otherwise the rows are masked as the eval collator masks them.
  bool own_masks = false;
  std::vector<std::string> names;  // a classifier's class names by id (id2label, else LABEL_k)
  std::vector<int64_t> example;    // the input example of each row (empty examples are dropped)
};

// The train data's settings with `input` as the file: its format by extension (.jsonl, .csv,
// .tsv, else text); a text file is read a line per example when by_line, else as one document.
DatasetOptions input_dataset_options(const std::string& input, const Config& config, bool by_line);

// Reads `input` as the checkpoint's task reads data: a text file (one document for a causal
// LM, a line per example otherwise), .jsonl / .csv / .tsv rows with the train data's text
// field (or input_ids), with their labels when the first row has the label field (the
// classes of id2label; token classification: per-token "labels"). `hf_config` is the model's
// config.json; `seed` the masking seed (data_seed, else seed).
PredictInput predict_input(const Config& config, const Tokenizer& tok, const nlohmann::json& hf_config, ModelTask task,
                           const std::string& input, uint64_t seed);

// One JSON line per row of in.data: its input index and the task's predictions
// (`predictions[i]`: the evaluation loop's argmax ids of row i).
std::string predict_lines(const PredictInput& in, const Tokenizer& tok,
                          const std::vector<std::vector<int64_t>>& predictions);

}  // namespace hftrain
