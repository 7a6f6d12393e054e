// The datasets every task trains on: the token stream cut into block_size windows, as
// transformers' run_clm groups texts (the remainder shorter than a block is dropped), or each
// example its own sequence, truncated to block_size and padded per batch (run_mlm's
// line_by_line, run_glue's classification rows, prompt-completion pairs); the collator then
// makes the task's labels (causal, masked, a class per row or per token).
#pragma once

#include "hftrain/core/batch.h"
#include "hftrain/core/task.h"
#include "hftrain/data/collator.h"
#include "hftrain/data/data_options.h"
#include "hftrain/data/tokenizer.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace hftrain {

// What the trainer batches: size() examples, any subset of which collates into a Batch.
class LmDataset {
 public:
  virtual ~LmDataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_tokens() const = 0;          // real tokens, padding not counted
  virtual int64_t length(int64_t i) const = 0;     // tokens of example i (group_by_length)
  virtual Batch collate(const at::Tensor& indices) const = 0;  // indices: (B) int64
};

class TokenWindows : public LmDataset {
 public:
  // tokens (N): int64, or the uint8 / int16 / int32 view of an unsigned token file
  // (`unsigned_bits` 16 or 32 says how to read the signed types back). labels (N), when
  // defined, are the windows' labels (rows that carry their own); else labels = input_ids.
  TokenWindows(const at::Tensor& tokens, int64_t block_size, int unsigned_bits = 0, const at::Tensor& labels = {});
  int64_t size() const override { return windows_.size(0); }
  int64_t num_tokens() const override { return windows_.numel(); }
  int64_t length(int64_t) const override { return block_size(); }
  Batch collate(const at::Tensor& indices) const override;  // collate_causal_lm
  int64_t block_size() const { return windows_.size(1); }
  at::Tensor gather(const at::Tensor& indices) const;  // (B, block_size) int64

 private:
  at::Tensor windows_;  // (num_windows, block_size), stored dtype
  at::Tensor labels_;   // the same shape, int32, or undefined
  int unsigned_bits_;
};

// Examples [first, last) of a tokenized dataset, one sequence each. Longer ones keep their
// first max_length - keep_tail tokens and their last keep_tail (the post-processor's [SEP]
// or EOS), as transformers truncates around special tokens; empty ones are dropped.
class TokenSequences : public LmDataset {
 public:
  // labels: (N) int32 like ids, or undefined (labels = input_ids). example_labels: one
  // class id per example (int64, indexed by example), for sequence classification.
  TokenSequences(at::Tensor ids, at::Tensor labels, at::Tensor offsets, int64_t first, int64_t last,
                 int64_t max_length, int64_t keep_tail, PadOptions pad, at::Tensor example_labels = {});
  // data.packing: a batch's sequences are packed (collate_flattened) into rows of at most
  // max_length tokens instead of padded one per row.
  void set_flatten(bool on) { flatten_ = on; }
  int64_t size() const override { return static_cast<int64_t>(spans_.size()); }
  int64_t num_tokens() const override { return num_tokens_; }
  int64_t length(int64_t i) const override { return spans_[i].length; }
  Batch collate(const at::Tensor& indices) const override;  // padded; labels -100 on padding
  int64_t num_truncated() const { return num_truncated_; }
  int64_t example(int64_t i) const { return spans_[i].example; }  // which input example row i is

 private:
  struct Span {
    int64_t start, end;    // the example's ids: [start, end)
    int64_t length, tail;  // tokens used; of those, taken from the end (truncated examples)
    int64_t example;
  };
  std::vector<int32_t> take(const at::Tensor& from, const Span& s) const;
  at::Tensor ids_, labels_;  // (N) int32; labels_ may be undefined
  at::Tensor example_labels_;
  std::vector<Span> spans_;
  PadOptions pad_;
  bool flatten_ = false;
  int64_t max_length_;
  int64_t num_tokens_ = 0, num_truncated_ = 0;
};

// Masked LM: the inner dataset's batches masked as DataCollatorForLanguageModeling(mlm=True)
// masks, drawing from a generator seeded with `seed` and the batch's example indices, so a
// batch is masked the same way in every run, after a resume, and on any loader thread.
class MaskedLmDataset : public LmDataset {
 public:
  MaskedLmDataset(std::shared_ptr<const LmDataset> inner, MlmOptions mlm, uint64_t seed)
      : inner_(std::move(inner)), mlm_(std::move(mlm)), seed_(seed) {}
  int64_t size() const override { return inner_->size(); }
  int64_t num_tokens() const override { return inner_->num_tokens(); }
  int64_t length(int64_t i) const override { return inner_->length(i); }
  Batch collate(const at::Tensor& indices) const override;

 private:
  std::shared_ptr<const LmDataset> inner_;
  MlmOptions mlm_;
  uint64_t seed_;
};

struct Datasets {
  std::shared_ptr<const LmDataset> train, eval;
  std::vector<std::pair<std::string, std::shared_ptr<const LmDataset>>> named_evals;  // data.eval by name
  // Sequence classification: the class names by id (run_glue: the train labels' sorted
  // distinct values, numerically when they are all integers).
  std::vector<std::string> label_names;
};

// Masked LM's collator settings: data.mlm_probability, the tokenizer's mask token (a user
// error without one) and the special tokens that are never masked.
MlmOptions mlm_options(const DataOptions& opts, const Tokenizer& tok);

// The id batches are padded with: the tokenizer's pad token, else its EOS, else 0.
int64_t padding_id(const Tokenizer& tok);

// Reads (or generates) and tokenizes train and eval data. With no eval dataset, the first
// validation_split_percentage % of the train examples (of the tokens, for generated data
// and token files) become the eval set, as run_clm splits train[:N%]. For sequence
// classification every example is its own sequence with the class of its label field.
// Every token id, and every label but -100, must be below the vocab size, else a user error
// naming the file and where the id is.
struct DataLoad {
  ModelTask task = ModelTask::kCausalLM;
  uint64_t seed = 0;       // masked LM's masking seed (data_seed, else seed)
  int64_t vocab_size = 0;  // the model's; 0: the tokenizer's
  // false, for an evaluation: with a data.eval, the train data is not read (a classifier's
  // still is: its labels name the classes).
  bool train = true;
};
Datasets datasets_load(const DataOptions& opts, const Tokenizer& tok, const DataLoad& how = {});

// The built-in default data: a pseudo-language (a syllable lexicon and a small grammar)
// that is deterministic for a seed on every platform and learnable by a tiny model.
std::string generate_text(int64_t num_bytes, uint64_t seed);

}  // namespace hftrain
