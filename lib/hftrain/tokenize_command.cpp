#include "hftrain/tokenize_command.h"

#include "hftrain/builtins.h"
#include "hftrain/core/error.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/data/text/pretokenize.h"
#include "hftrain/io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace hftrain {

namespace fs = std::filesystem;

namespace {

template <typename T>
T named(const std::string& value, const char* option, std::initializer_list<std::pair<const char*, T>> table) {
  std::string names;
  for (const auto& [n, v] : table) {
    if (value == n) return v;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  fail("{} \"{}\" is not one of: {}", option, value, names);
}

}  // namespace

void run_tokenize(const TokenizeOptions& o) {
  register_builtins();
  set_pretokenizer_scanners(!o.regex_only);
  std::shared_ptr<const Tokenizer> tok = tokenizer_load(o.tokenizer, "--tokenizer");
  DatasetOptions d;
  d.path = o.input;
  std::string fmt = o.input_format;
  if (fmt.empty()) {
    const std::string ext = fs::path(o.input).extension().string();
    fmt = ext == ".jsonl" || ext == ".json" ? "jsonl" : ext == ".csv" ? "csv" : ext == ".tsv" ? "tsv" : "text";
  }
  d.format = named<DatasetFormat>(fmt, "--format", {{"text", DatasetFormat::kText}, {"jsonl", DatasetFormat::kJsonl},
                                                    {"csv", DatasetFormat::kCsv}, {"tsv", DatasetFormat::kTsv}});
  d.sample_by = named<SampleBy>(o.sample_by, "--sample-by", {{"line", SampleBy::kLine},
                                                             {"paragraph", SampleBy::kParagraph},
                                                             {"document", SampleBy::kDocument}});
  d.text_field = o.text_field;
  std::string out_fmt = o.output_format;
  if (out_fmt.empty())
    out_fmt = fs::path(o.output).extension() == ".jsonl" ? "jsonl" : tok->vocab_size() <= 65536 ? "uint16" : "uint32";
  named<int>(out_fmt, "--output-format", {{"jsonl", 0}, {"uint16", 16}, {"uint32", 32}});
  HFT_CHECK(out_fmt != "uint16" || tok->vocab_size() <= 65536,
            "--output-format uint16 cannot hold this tokenizer's {} ids; use uint32", tok->vocab_size());

  std::vector<std::vector<int32_t>> ids =
      tokenize_examples(examples_read(d, "--input"), *tok, o.workers, o.input, o.add_special_tokens);
  if (!fs::path(o.output).parent_path().empty()) fs::create_directories(fs::path(o.output).parent_path());
  if (out_fmt == "jsonl") {
    std::string text;
    for (const auto& v : ids) text += nlohmann::json{{"input_ids", v}}.dump() + "\n";
    io::write_file_atomic(o.output, text);
  } else {
    std::string bytes;
    const size_t width = out_fmt == "uint16" ? 2 : 4;
    for (const auto& v : ids)
      for (int32_t id : v) {
        const auto u = static_cast<uint32_t>(id);
        for (size_t b = 0; b < width; ++b) bytes.push_back(static_cast<char>((u >> (8 * b)) & 0xff));
      }
    io::write_file_atomic(o.output, bytes);
  }
}

}  // namespace hftrain
