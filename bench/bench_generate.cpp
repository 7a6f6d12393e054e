// Greedy generation's tokens per second with the KV cache against the loop without one (each
// step reruns the whole sequence, as a forward-only loop would), and a cached token's cost
// against one forward of a single token (the floor: one position through every layer).
// Random weights; the ids generated with and without the cache are checked to be equal.
//   build/bench_generate [--prompt 32] [--new 128] [--rounds 3]
#include "bench_util.h"
#include "hftrain/builtins.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/generate.h"
#include "hftrain/models/hf_model_dir.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace hftrain;
using json = nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t prompt_len = 32, new_tokens = 128, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--prompt")) prompt_len = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--new")) new_tokens = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoll(argv[i + 1]);
  }
  compat::configure_host();
  register_builtins();
  struct Case {
    const char* name;
    json model;
  };
  const std::vector<Case> cases = {
      {"gpt2 6x512 vocab 8192", {{"type", "gpt2"}, {"config", {{"vocab_size", 8192}, {"n_positions", 512}, {"n_embd", 512},
                                                              {"n_layer", 6}, {"n_head", 8}}}}},
      {"llama 6x512 vocab 8192", {{"type", "llama"}, {"config", {{"vocab_size", 8192}, {"hidden_size", 512},
                                                                {"intermediate_size", 1376}, {"num_hidden_layers", 6},
                                                                {"num_attention_heads", 8}, {"num_key_value_heads", 4},
                                                                {"max_position_embeddings", 512}}}}},
  };
  std::printf("greedy generation, prompt %lld tokens, %lld new, batch 1, median of %lld rounds\n",
              static_cast<long long>(prompt_len), static_cast<long long>(new_tokens), static_cast<long long>(rounds));
  std::printf("%-24s %14s %14s %8s %16s %12s\n", "model", "cache tok/s", "no cache tok/s", "speedup",
              "1-token fwd ms", "cached/fwd");
  json summary = json::object();
  for (const Case& c : cases) {
    ModelOptions mo;
    mo.type = c.model["type"];
    mo.config = c.model["config"];
    at::manual_seed(0);
    std::shared_ptr<Model> model = model_create(mo);
    model->eval();
    std::vector<int64_t> prompt;
    for (int64_t i = 0; i < prompt_len; ++i) prompt.push_back((i * 37 + 11) % 8192);
    GenerateOptions o;
    o.max_new_tokens = new_tokens;
    std::vector<double> cached_s, plain_s, one_ms;
    std::vector<int64_t> ids_cached, ids_plain;
    for (int64_t r = 0; r < rounds; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      o.use_cache = true;
      ids_cached = generate(*model, prompt, o);
      cached_s.push_back(seconds_since(t0));
      t0 = std::chrono::steady_clock::now();
      o.use_cache = false;
      ids_plain = generate(*model, prompt, o);
      plain_s.push_back(seconds_since(t0));
      // One token's forward, no cache: the cost floor of a decoding step.
      at::NoGradGuard no_grad;
      Batch one{{"input_ids", at::tensor({prompt[0]}, at::kLong).view({1, 1})}};
      t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < 20; ++k) model->forward(one, std::nullopt);
      one_ms.push_back(seconds_since(t0) * 1000.0 / 20);
    }
    if (ids_cached != ids_plain) {
      std::fprintf(stderr, "%s: the ids with and without the cache differ\n", c.name);
      return 1;
    }
    const double cached = static_cast<double>(new_tokens) / bench::median(cached_s);
    const double plain = static_cast<double>(new_tokens) / bench::median(plain_s);
    const double per_token_ms = 1000.0 / cached, fwd = bench::median(one_ms);
    std::printf("%-24s %14.1f %14.1f %7.2fx %16.3f %11.2fx\n", c.name, cached, plain, cached / plain, fwd,
                per_token_ms / fwd);
    summary[c.name] = {{"cache_tokens_per_s", cached},
                       {"no_cache_tokens_per_s", plain},
                       {"cached_token_over_one_token_forward", per_token_ms / fwd}};
  }
  std::printf("%s\n", json{{"bench", "generate"}, {"results", summary}}.dump().c_str());
  return 0;
}
