// The data section of the config (`data:`), typed: which files, how they are read and
// tokenized, and how examples become training sequences.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hftrain {

enum class DatasetFormat { kGenerated, kText, kJsonl, kCsv, kTsv, kTokens };
enum class TokenDtype { kUint8, kUint16, kUint32 };
enum class SampleBy { kLine, kParagraph, kDocument };  // HF datasets' text loader

struct DatasetOptions {
  DatasetFormat format = DatasetFormat::kGenerated;
  // text/jsonl/csv/tsv: a file, a directory (its files, sorted) or a glob; tokens: a file.
  std::string path;
  std::string text_field = "text";        // jsonl/csv/tsv: the field or column of the text
  std::string label_field = "label";      // jsonl/csv/tsv, sequence classification: the class
  // jsonl/csv/tsv: a prompt before text_field's response, left out of the loss (labels -100),
  // as TRL's prompt-completion rows; empty: none.
  std::string prompt_field;
  SampleBy sample_by = SampleBy::kLine;   // text: one example per line, paragraph or file
  bool keep_linebreaks = true;            // text by line: each line keeps its "\n" (run_clm)
  int64_t num_bytes = 400000;  // generated: size of the generated text
  int64_t seed = 0;            // generated: the text generator's seed
  // tokens: little-endian ids, memory-mapped; `offset` and `num_tokens` (-1: to the end)
  // select a range, counted in tokens.
  TokenDtype dtype = TokenDtype::kUint16;
  int64_t offset = 0;
  int64_t num_tokens = -1;
};

struct DataOptions {
  std::string tokenizer = "byte";
  int64_t block_size = 128;
  // Share of the train data held out for evaluation when there is no `eval` dataset.
  double validation_split_percentage = 5;
  // Tokenized datasets are cached under cache_dir (default $HFTRAIN_CACHE, else
  // $XDG_CACHE_HOME/hftrain, else ~/.cache/hftrain), keyed by the files and the tokenizer.
  std::string cache_dir;
  bool overwrite_cache = false;
  int64_t preprocessing_num_workers = 0;  // tokenizer threads; 0: one per core
  // true: concatenate and cut into block_size windows (run_clm); false: each example its own
  // sequence, truncated to block_size and padded per batch (run_mlm's line_by_line).
  bool group_texts = true;
  // DataCollatorWithFlattening (TRL's padding_free): each batch's examples, truncated to
  // block_size, packed into rows of up to block_size tokens whose position_ids restart at every
  // example, attention and loss kept within each. Causal LMs; group_texts does not apply.
  bool packing = false;
  bool pad_to_max_length = false;  // group_texts false: pad every batch to block_size
  int64_t pad_to_multiple_of = 0;  // group_texts false: round the padded length up
  double mlm_probability = 0.15;   // masked_lm: the share of tokens chosen for prediction
  DatasetOptions train;
  std::optional<DatasetOptions> eval;
  // `eval: {name: dataset, ...}`: several eval sets, each evaluated in turn with metrics
  // eval_<name>_loss, ... (HF's dict of eval datasets); `eval` is then empty.
  std::vector<std::pair<std::string, DatasetOptions>> named_evals;
  bool has_eval() const { return eval.has_value() || !named_evals.empty(); }
};

}  // namespace hftrain
