// Examples of a dataset on disk: text (by line, paragraph or document), JSON Lines (a text
// field, or rows that already carry input_ids, and maybe labels and attention_mask) and
// CSV/TSV with a header, over one file, a directory's files or a glob, in a fixed order.
#pragma once

#include "hftrain/data/data_options.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

struct Example {
  std::string text;
  // A prompt before `text` that gets no loss (DatasetOptions::prompt_field).
  std::optional<std::string> prompt;
  std::vector<int32_t> input_ids;  // rows that come tokenized
  bool tokenized = false;
  // A tokenized row's own labels (-100 where it wants no loss, as for a prompt); without
  // them the labels are the input_ids.
  std::optional<std::vector<int32_t>> labels;
  std::string label;  // with_labels: the row's label field (an integer's digits, or the string)
};

// The files `path` names: itself, the regular files of a directory (sorted, hidden ones
// skipped), or the matches of a glob (sorted). None is a user error naming `key`.
std::vector<std::string> dataset_files(const std::string& path, const std::string& key);

// Every example of a text, jsonl, csv or tsv dataset, file by file. with_labels (sequence
// classification): each row must carry d.label_field, else a user error naming file:line.
std::vector<Example> examples_read(const DatasetOptions& d, const std::string& key, bool with_labels = false);

// The fields of one CSV/TSV record starting at `pos` (RFC 4180 quoting); advances `pos`
// past the record's line end.
std::vector<std::string> csv_record(const std::string& text, size_t& pos, char sep);

}  // namespace hftrain
