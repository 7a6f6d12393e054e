// Forward + backward time and peak memory of GPT-2, Llama and BERT blocks with and without
// gradient checkpointing. Each measurement runs in a fresh child process, so that peak RSS
// (wait4's ru_maxrss) is that configuration's alone; a child that only builds the model gives
// the baseline, and peak - baseline is what the step itself held.
//   build/bench_models [--steps N]
#include "hftrain/builtins.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/models/hf_model_dir.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace hftrain;
using json = nlohmann::json;

namespace {

struct Case {
  const char* name;
  json model;  // ModelOptions: type + config
  int64_t batch, seq;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"gpt2 6x512", {{"type", "gpt2"}, {"config", {{"vocab_size", 8192}, {"n_positions", 512}, {"n_embd", 512},
                                                    {"n_layer", 6}, {"n_head", 8}}}}, 8, 512},
      {"llama 6x512", {{"type", "llama"}, {"config", {{"vocab_size", 8192}, {"hidden_size", 512}, {"intermediate_size", 1376},
                                                      {"num_hidden_layers", 6}, {"num_attention_heads", 8},
                                                      {"num_key_value_heads", 4}, {"max_position_embeddings", 512}}}}, 8, 512},
      {"bert 6x512", {{"type", "bert"}, {"config", {{"vocab_size", 8192}, {"hidden_size", 512}, {"intermediate_size", 2048},
                                                    {"num_hidden_layers", 6}, {"num_attention_heads", 8},
                                                    {"max_position_embeddings", 512}}}}, 8, 512},
  };
  return c;
}

// In the child: build the model; mode "base" stops there, else run `steps` timed
// forward+backward passes after one warm-up and print the median milliseconds.
int child(size_t index, const std::string& mode, int steps) {
  register_builtins();
  compat::configure_host();
  const Case& c = cases()[index];
  ModelOptions opts;
  opts.type = c.model["type"];
  opts.config = c.model["config"];
  at::manual_seed(0);
  auto model = model_create(opts);
  model->train();
  model->set_gradient_checkpointing(mode == "ckpt");
  if (mode == "base") {
    std::printf("{}\n");
    return 0;
  }
  const int64_t vocab = opts.config["vocab_size"];
  Batch batch{{"input_ids", at::randint(5, vocab, {c.batch, c.seq}, at::kLong)}};
  batch["labels"] = batch["input_ids"];
  std::vector<double> ms;
  for (int s = 0; s <= steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    model->zero_grad();
    model->forward(batch, std::nullopt).loss.backward();
    if (s > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%s\n", json{{"ms", ms[ms.size() / 2]}}.dump().c_str());
  return 0;
}

struct Result {
  double ms = 0, peak_mb = 0;
};

Result spawn(size_t index, const std::string& mode, int steps) {
  int fds[2];
  if (::pipe(fds) != 0) std::exit(1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    const std::string i = std::to_string(index), n = std::to_string(steps);
    ::execl("/proc/self/exe", "bench_models", "--child", i.c_str(), mode.c_str(), n.c_str(), nullptr);
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[256];
  for (ssize_t k; (k = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, k);
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  Result r;
  r.peak_mb = ru.ru_maxrss / 1024.0;
  const json j = json::parse(out.substr(0, out.find('\n')));
  if (j.contains("ms")) r.ms = j["ms"];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "--child") == 0) return child(std::stoul(argv[2]), argv[3], std::stoi(argv[4]));
  int steps = 3;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--steps") steps = std::stoi(argv[i + 1]);
  json summary;
  std::printf("%-12s %10s %10s %7s %14s %14s %8s\n", "model", "plain ms", "ckpt ms", "time x", "plain step MB",
              "ckpt step MB", "memory x");
  for (size_t i = 0; i < cases().size(); ++i) {
    const Result base = spawn(i, "base", steps), plain = spawn(i, "plain", steps), ckpt = spawn(i, "ckpt", steps);
    const double plain_mb = plain.peak_mb - base.peak_mb, ckpt_mb = ckpt.peak_mb - base.peak_mb;
    std::printf("%-12s %10.0f %10.0f %6.2fx %14.0f %14.0f %7.2fx\n", cases()[i].name, plain.ms, ckpt.ms,
                ckpt.ms / plain.ms, plain_mb, ckpt_mb, ckpt_mb / plain_mb);
    summary[cases()[i].name] = {{"plain_ms", plain.ms}, {"ckpt_ms", ckpt.ms}, {"baseline_mb", base.peak_mb},
                                {"plain_step_mb", plain_mb}, {"ckpt_step_mb", ckpt_mb}};
  }
  std::printf("%s\n", summary.dump().c_str());
}
