// Packing (data.packing, DataCollatorWithFlattening) against padded batches (group_texts:
// false) on a corpus of mixed-length documents: the tokens each epoch processes (padding
// included; include_num_input_tokens_seen: all counts them) and the epoch's time, both runs
// of the same model, data order and batch size, back to back, median of the rounds.
//   build/bench_packing [--docs 600] [--rounds 3]
#include "bench_util.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/dataset.h"
#include "hftrain/run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace hftrain;
using json = nlohmann::json;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  int64_t docs = 600, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--docs")) docs = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoll(argv[i + 1]);
  }
  compat::configure_host();
  const fs::path dir = fs::temp_directory_path() / ("hftrain-bench-packing-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // Documents of 1 to 24 sentences of the built-in pseudo-language: 20 to about 900 bytes.
  const std::string text = generate_text(docs * 500, 7);
  std::ofstream corpus(dir / "docs.jsonl");
  int64_t real = 0;
  size_t at = 0;
  for (int64_t d = 0; d < docs && at < text.size(); ++d) {
    const int64_t sentences = 1 + (d * 7919 % 97) * (d % 5 == 0 ? 23 : 5) / 96;
    size_t end = at;
    for (int64_t s = 0; s < sentences && end < text.size(); ++s) end = text.find('.', end + 1);
    if (end == std::string::npos) break;
    const std::string doc = text.substr(at, end + 1 - at);
    real += std::min<int64_t>(static_cast<int64_t>(doc.size()), 256);
    corpus << json{{"text", doc}}.dump() << "\n";
    at = end + 2;
  }
  corpus.close();
  std::printf("packing vs padded batches: %lld documents (%lld tokens after truncation to 256), GPT-2 4x128, "
              "batch 8, one epoch, median of %lld rounds\n",
              static_cast<long long>(docs), static_cast<long long>(real), static_cast<long long>(rounds));
  json summary = json::object();
  std::vector<double> ratio_tokens, ratio_time;
  double padded_tokens = 0, packed_tokens = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    for (const bool packing : {false, true}) {
      const fs::path out = dir / (packing ? "packed" : "padded");
      fs::remove_all(out);
      ConfigSource src;
      config_merge_text(src,
                        "output_dir: " + out.string() + "\nnum_train_epochs: 1\nper_device_train_batch_size: 8\n"
                        "learning_rate: 1.0e-3\nlogging_steps: 1000\nsave_strategy: 'no'\n"
                        "include_num_input_tokens_seen: all\ndisable_tqdm: true\n"
                        "model: {type: gpt2, config: {vocab_size: 256, n_positions: 256, n_embd: 128, n_layer: 4, n_head: 4}}\n"
                        "data: {block_size: 256, validation_split_percentage: 0, group_texts: false, packing: " +
                            std::string(packing ? "true" : "false") + ", cache_dir: " + (dir / "cache").string() +
                            ", train: {format: jsonl, path: " + (dir / "docs.jsonl").string() + "}}\n",
                        "bench");
      run_train(config_resolve(src));
      const json results = json::parse(std::ifstream(out / "train_results.json"));
      double seen = 0;
      std::ifstream log(out / "log.jsonl");
      for (std::string line; std::getline(log, line);) {
        const json row = json::parse(line);
        if (row.contains("num_input_tokens_seen")) seen = row["num_input_tokens_seen"].get<double>();
      }
      (packing ? packed_tokens : padded_tokens) = seen;
      summary[packing ? "packed_runtime" : "padded_runtime"].push_back(results["train_runtime"]);
    }
    const auto& pr = summary["packed_runtime"], &dr = summary["padded_runtime"];
    ratio_time.push_back(dr.back().get<double>() / pr.back().get<double>());
    ratio_tokens.push_back(padded_tokens / packed_tokens);
  }
  std::printf("tokens processed (the documents hold %lld): padded batches %.0f (%.1f%% padding), packed rows %.0f "
              "(%.1f%% padding); padded / packed %.2fx\n",
              static_cast<long long>(real), padded_tokens, 100.0 * (padded_tokens - real) / padded_tokens, packed_tokens,
              100.0 * (packed_tokens - real) / packed_tokens, bench::median(ratio_tokens));
  std::printf("epoch time: padded / packed %.2fx\n", bench::median(ratio_time));
  fs::remove_all(dir);
  std::printf("%s\n", json{{"bench", "packing"},
                           {"document_tokens", real},
                           {"padded_tokens", padded_tokens},
                           {"packed_tokens", packed_tokens},
                           {"padded_over_packed_time", bench::median(ratio_time)}}
                          .dump()
                          .c_str());
  return 0;
}
