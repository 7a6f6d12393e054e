// Datasets on disk: JSON Lines, CSV/TSV, text by line/paragraph/document over files,
// directories and globs; the errors that name file:line; the tokenized-data cache.
#include "hftrain/data/dataset.h"
#include "hftrain/data/examples.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/io/atomic_file.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using hftrain::DatasetFormat;
using hftrain::test::TempDir;

namespace {

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.str() + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

hftrain::DatasetOptions dataset(DatasetFormat format, const std::string& path) {
  hftrain::DatasetOptions d;
  d.format = format;
  d.path = path;
  return d;
}

std::vector<std::string> texts(const std::vector<hftrain::Example>& ex) {
  std::vector<std::string> out;
  for (const auto& e : ex) out.push_back(e.text);
  return out;
}

}  // namespace

TEST_CASE("JSON Lines rows give their text field, or their input_ids as they are", "[unit][data]") {
  TempDir dir("jsonl");
  auto d = dataset(DatasetFormat::kJsonl,
                   write(dir, "a.jsonl", "{\"text\": \"ab\", \"id\": 1}\n\n{\"input_ids\": [7, 8, 9]}\n{\"text\": \"\\u00e9\"}\n"));
  auto ex = hftrain::examples_read(d, "data.train.path");
  REQUIRE(ex.size() == 3);
  CHECK(ex[0].text == "ab");
  CHECK(ex[1].tokenized);
  CHECK(ex[1].input_ids == std::vector<int32_t>{7, 8, 9});
  CHECK(ex[2].text == "\xC3\xA9");
  // The byte tokenizer's ids are the UTF-8 bytes: the stream is the rows in order.
  hftrain::ByteTokenizer tok;
  auto ids = hftrain::tokenize_examples(ex, tok, 2, "test");
  CHECK(ids[0] == std::vector<int32_t>{'a', 'b'});
  CHECK(ids[1] == std::vector<int32_t>{7, 8, 9});
  CHECK(ids[2] == std::vector<int32_t>{0xC3, 0xA9});

  d.text_field = "body";
  write(dir, "b.jsonl", "{\"body\": \"x\"}\n{\"title\": \"t\", \"id\": 3}\n");
  d.path = dir.str() + "/b.jsonl";
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(d, "data.train.path"); },
                               {"b.jsonl:2", "no field \"body\"", "id, title"});
}

TEST_CASE("a malformed JSON line is a user error naming file:line", "[unit][data]") {
  TempDir dir("jsonl-bad");
  auto d = dataset(DatasetFormat::kJsonl, write(dir, "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"cut\n"));
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(d, "data.train.path"); },
                               {"bad.jsonl:2", "invalid JSON"});
}

TEST_CASE("an empty dataset, or a path that names no files, is a user error", "[unit][data]") {
  TempDir dir("empty");
  auto d = dataset(DatasetFormat::kJsonl, write(dir, "empty.jsonl", "\n  \n"));
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(d, "data.train.path"); },
                               {"empty.jsonl", "no examples"});
  d.path = dir.str() + "/*.csv";
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(d, "data.train.path"); },
                               {"*.csv", "names no files"});
}

TEST_CASE("CSV and TSV read the named column with RFC 4180 quoting", "[unit][data]") {
  TempDir dir("csv");
  auto d = dataset(DatasetFormat::kCsv, write(dir, "a.csv",
                                              "label,text\r\n1,\"a, b\"\r\n0,\"say \"\"hi\"\"\nnext line\"\r\n2,plain\n"));
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"a, b", "say \"hi\"\nnext line", "plain"});
  auto t = dataset(DatasetFormat::kTsv, write(dir, "a.tsv", "text\tlabel\nx y\t1\n"));
  CHECK(texts(hftrain::examples_read(t, "k")) == std::vector<std::string>{"x y"});
  d.text_field = "sentence";
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(d, "k"); },
                               {"a.csv", "no column \"sentence\"", "label, text"});
}

TEST_CASE("text splits by line keeping line breaks, by paragraph, or by document", "[unit][data]") {
  TempDir dir("text");
  auto d = dataset(DatasetFormat::kText, write(dir, "a.txt", "one\ntwo\r\n\nthree\n\n\nfour"));
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"one\n", "two\r\n", "\n", "three\n", "\n", "\n", "four"});
  d.keep_linebreaks = false;
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"one", "two", "", "three", "", "", "four"});
  d.sample_by = hftrain::SampleBy::kParagraph;
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"one\ntwo\r", "three", "\nfour"});
  d.sample_by = hftrain::SampleBy::kDocument;
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"one\ntwo\r\n\nthree\n\n\nfour"});
}

TEST_CASE("a directory or a glob reads its files in sorted order, skipping hidden ones", "[unit][data]") {
  TempDir dir("files");
  write(dir, "docs/b.txt", "B");
  write(dir, "docs/a.txt", "A");
  write(dir, "docs/.hidden", "H");
  write(dir, "docs/c.md", "C");
  auto d = dataset(DatasetFormat::kText, dir.str() + "/docs");
  d.sample_by = hftrain::SampleBy::kDocument;
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"A", "B", "C"});
  d.path = dir.str() + "/docs/*.txt";
  CHECK(texts(hftrain::examples_read(d, "k")) == std::vector<std::string>{"A", "B"});
}

TEST_CASE("tokenized datasets are cached, reused unchanged, and redone when the file changes", "[unit][data]") {
  TempDir dir("cache");
  hftrain::DataOptions opts;
  opts.cache_dir = dir.str() + "/cache";
  opts.block_size = 2;
  opts.validation_split_percentage = 0;
  opts.train = dataset(DatasetFormat::kText, write(dir, "a.txt", "abcd"));
  hftrain::ByteTokenizer tok;
  auto first = hftrain::datasets_load(opts, tok);
  CHECK(first.train->collate(at::tensor({1}, at::kLong)).at("input_ids")[0][0].item<int64_t>() == 'c');
  std::vector<std::filesystem::path> caches;
  for (const auto& e : std::filesystem::directory_iterator(opts.cache_dir)) caches.push_back(e.path());
  REQUIRE(caches.size() == 1);
  // Rewrite the cached ids: a load that reads them proves the cache, not the text, was used.
  std::string bytes = hftrain::io::read_file(caches[0].string());
  REQUIRE(bytes.size() == 32 + 4 * 4 + 8 * 2);  // header, 4 ids, offsets of 1 example
  bytes[32 + 4 * 2] = 'z';
  std::ofstream(caches[0], std::ios::binary) << bytes;
  CHECK(hftrain::datasets_load(opts, tok).train->collate(at::tensor({1}, at::kLong)).at("input_ids")[0][0].item<int64_t>() == 'z');
  opts.overwrite_cache = true;
  CHECK(hftrain::datasets_load(opts, tok).train->collate(at::tensor({1}, at::kLong)).at("input_ids")[0][0].item<int64_t>() == 'c');
  opts.overwrite_cache = false;
  write(dir, "a.txt", "abxyz");  // another size: another key
  CHECK(hftrain::datasets_load(opts, tok).train->collate(at::tensor({1}, at::kLong)).at("input_ids")[0][0].item<int64_t>() == 'x');
}

TEST_CASE("group_texts false: one padded sequence per example, truncated keeping its [SEP], split by example",
          "[unit][data]") {
  TempDir dir("sequences");
  std::string rows;
  for (int i = 0; i < 10; ++i) rows += "{\"text\": \"" + std::string(i == 3 ? 0 : 2 + i, 'a' + i) + "\"}\n";
  hftrain::DataOptions opts;
  opts.cache_dir = dir.str() + "/cache";
  opts.block_size = 6;
  opts.group_texts = false;
  opts.validation_split_percentage = 25;  // round(2.5) = 2 examples, halves to even as Python rounds
  opts.train = dataset(DatasetFormat::kJsonl, write(dir, "a.jsonl", rows));
  // BERT-style [CLS] text [SEP] around each example: byte ids plus 1000 and 1001.
  struct Wrapped : hftrain::ByteTokenizer {
    void encode_to(std::string_view t, std::vector<int32_t>& out, bool special) const override {
      out.push_back(1000);
      hftrain::ByteTokenizer::encode_to(t, out, special);
      out.push_back(1001);
    }
    int64_t vocab_size() const override { return 1002; }
    int64_t num_special_tokens_after() const override { return 1; }
    std::optional<int64_t> special_token_id(std::string_view role) const override {
      return role == "pad_token" ? std::optional<int64_t>(7) : std::nullopt;
    }
  } tok;
  hftrain::Datasets ds = hftrain::datasets_load(opts, tok);
  REQUIRE(ds.eval->size() == 2);   // examples 0 and 1
  REQUIRE(ds.train->size() == 8);  // examples 2..9 (3 is empty text but still [CLS] [SEP])
  hftrain::Batch b = ds.train->collate(at::tensor({0, 7}, at::kLong));
  // Example 2 ("cccc"): 6 tokens fit. Example 9 (11 'j'): [CLS] j j j j [SEP], truncated.
  CHECK(b.at("input_ids")[0].equal(at::tensor({1000, 'c', 'c', 'c', 'c', 1001}, at::kLong)));
  CHECK(b.at("input_ids")[1].equal(at::tensor({1000, 'j', 'j', 'j', 'j', 1001}, at::kLong)));
  b = ds.train->collate(at::tensor({1}, at::kLong));  // example 3: [CLS] [SEP]
  CHECK(b.at("input_ids")[0].equal(at::tensor({1000, 1001}, at::kLong)));
  b = ds.eval->collate(at::tensor({0, 1}, at::kLong));  // "aa" and "bbb": padded with id 7
  CHECK(b.at("input_ids")[0].equal(at::tensor({1000, 'a', 'a', 1001, 7}, at::kLong)));
  CHECK(b.at("labels")[0].equal(at::tensor({1000, 'a', 'a', 1001, -100}, at::kLong)));
  CHECK(b.at("attention_mask")[0].equal(at::tensor({1, 1, 1, 1, 0}, at::kLong)));
  CHECK(ds.train->length(7) == 6);
}

TEST_CASE("rows with their own labels and attention_mask train on those labels, padding dropped", "[unit][data]") {
  TempDir dir("row-labels");
  hftrain::DataOptions opts;
  opts.cache_dir = dir.str() + "/cache";
  opts.block_size = 2;
  opts.validation_split_percentage = 0;
  opts.train = dataset(DatasetFormat::kJsonl,
                       write(dir, "sft.jsonl",
                             "{\"input_ids\": [5, 6, 7, 8], \"labels\": [-100, -100, 7, 8]}\n"
                             "{\"input_ids\": [9, 10, 0, 0], \"attention_mask\": [1, 1, 0, 0]}\n"
                             "{\"text\": \"ab\"}\n"));
  hftrain::ByteTokenizer tok;
  for (int pass = 0; pass < 2; ++pass) {  // the second pass reads the cache
    opts.group_texts = true;
    hftrain::Datasets ds = hftrain::datasets_load(opts, tok);
    REQUIRE(ds.train->size() == 4);
    hftrain::Batch b = ds.train->collate(at::arange(4, at::kLong));
    CHECK(b.at("input_ids").flatten().equal(at::tensor({5, 6, 7, 8, 9, 10, 'a', 'b'}, at::kLong)));
    CHECK(b.at("labels").flatten().equal(at::tensor({-100, -100, 7, 8, 9, 10, 'a', 'b'}, at::kLong)));
    opts.group_texts = false;
    opts.block_size = 8;
    ds = hftrain::datasets_load(opts, tok);
    b = ds.train->collate(at::arange(3, at::kLong));
    CHECK(b.at("labels")[0].equal(at::tensor({-100, -100, 7, 8}, at::kLong)));
    CHECK(b.at("labels")[1].equal(at::tensor({9, 10, -100, -100}, at::kLong)));
    CHECK(b.at("attention_mask")[1].equal(at::tensor({1, 1, 0, 0}, at::kLong)));
    CHECK(b.at("labels")[2].equal(at::tensor({'a', 'b', -100, -100}, at::kLong)));
    opts.block_size = 2;
  }
  auto d = dataset(DatasetFormat::kJsonl, write(dir, "bad.jsonl", "{\"input_ids\": [1, 2], \"labels\": [1]}\n"));
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(d, "k"); },
                               {"bad.jsonl:1", "\"labels\" has 1 entries, \"input_ids\" 2"});
}

TEST_CASE("prompt and response rows: the prompt gets no loss, the response ends with the EOS token",
          "[unit][data]") {
  TempDir dir("prompted");
  hftrain::DataOptions opts;
  opts.cache_dir = dir.str() + "/cache";
  opts.block_size = 16;
  opts.group_texts = false;
  opts.validation_split_percentage = 0;
  opts.train = dataset(DatasetFormat::kJsonl, write(dir, "sft.jsonl",
                                                    "{\"prompt\": \"Q:ab\", \"response\": \"cd\"}\n"
                                                    "{\"response\": \"x\", \"prompt\": \"\"}\n"));
  opts.train.prompt_field = "prompt";
  opts.train.text_field = "response";
  // Llama-style: the post-processor puts a BOS (1000) before a text; the EOS is 1001.
  struct Llama : hftrain::ByteTokenizer {
    void encode_to(std::string_view t, std::vector<int32_t>& out, bool special) const override {
      if (special) out.push_back(1000);
      hftrain::ByteTokenizer::encode_to(t, out, special);
    }
    int64_t vocab_size() const override { return 1002; }
    std::optional<int64_t> special_token_id(std::string_view role) const override {
      return role == "eos_token" ? std::optional<int64_t>(1001) : std::nullopt;
    }
  } tok;
  for (int pass = 0; pass < 2; ++pass) {  // the second pass reads the cache
    hftrain::Datasets ds = hftrain::datasets_load(opts, tok);
    REQUIRE(ds.train->size() == 2);
    hftrain::Batch b = ds.train->collate(at::arange(2, at::kLong));
    CHECK(b.at("input_ids")[0].equal(at::tensor({1000, 'Q', ':', 'a', 'b', 'c', 'd', 1001}, at::kLong)));
    CHECK(b.at("labels")[0].equal(at::tensor({-100, -100, -100, -100, -100, 'c', 'd', 1001}, at::kLong)));
    CHECK(b.at("labels")[1].slice(0, 0, 3).equal(at::tensor({-100, 'x', 1001}, at::kLong)));
  }
  // A CSV column works the same; a row without the prompt is an error naming it.
  auto csv = dataset(DatasetFormat::kCsv, write(dir, "sft.csv", "question,answer\nab,c\n"));
  csv.prompt_field = "question";
  csv.text_field = "answer";
  auto ex = hftrain::examples_read(csv, "k");
  REQUIRE(ex.size() == 1);
  CHECK((ex[0].prompt == std::optional<std::string>("ab") && ex[0].text == "c"));
  csv.prompt_field = "prompt";
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(csv, "k"); },
                               {"sft.csv", "no prompt column \"prompt\"", "question, answer"});
  auto bad = dataset(DatasetFormat::kJsonl, write(dir, "bad.jsonl", "{\"response\": \"x\"}\n"));
  bad.prompt_field = "prompt";
  bad.text_field = "response";
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::examples_read(bad, "k"); },
                               {"bad.jsonl:1", "no prompt field \"prompt\""});
}
