// `hftrain tokenize`: a corpus tokenized once, with the code the trainer uses, into JSON
// Lines of input_ids (one line per example) or a flat uint16/uint32 token file (the
// `tokens` dataset format), as nanoGPT's prepare scripts do for big corpora.
#pragma once

#include <cstdint>
#include <string>

namespace hftrain {

struct TokenizeOptions {
  std::string tokenizer, input, output;
  std::string input_format;   // text|jsonl|csv|tsv; empty: from the input's extension
  std::string sample_by = "line";
  std::string text_field = "text";
  std::string output_format;  // jsonl|uint16|uint32; empty: jsonl for .jsonl, else the
                              // smallest token type that holds the vocab
  bool add_special_tokens = true;
  bool regex_only = false;  // Split regexes through Oniguruma even where a scanner knows them
  int64_t workers = 0;
};

void run_tokenize(const TokenizeOptions& o);

}  // namespace hftrain
