// Forward + backward time and peak memory of GPT-2, Llama and BERT blocks with and without
// gradient checkpointing. Each measurement runs in a fresh child process, so that peak RSS
// (wait4's ru_maxrss) is that configuration's alone; a child that only builds the model gives
// the baseline, and peak - baseline is what the step itself held.
//   build/bench_models [--steps N]
//
// --real: real-size architectures (SmolLM2-360M's and Qwen2.5-0.5B's config.json, random
// weights), whole optimizer steps of the Trainer at sequence 512, with and without gradient
// checkpointing, and LoRA r=16 on every projection, beside the same step in Python PyTorch
// (bench/python_llama.py: the same architecture, AdamW and clipping, on the same LibTorch).
// Peak resident memory is set against the 16 bytes per parameter that float32 weights,
// gradients and AdamW's two moments need.
//   build/bench_models --real [--steps N] [--only NAME] [--runs "hftrain,hftrain ckpt,hftrain lora,python,python ckpt"]
#include "bench_util.h"
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
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
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
  double ms = 0, peak_mb = 0, params = 0;
  bool ok = false;
};

// Runs `argv` in a child process and returns its peak resident memory and what the last JSON
// line of its output says (ms, params).
Result run_child(const std::vector<std::string>& argv) {
  const bench::ChildResult c = bench::run_child(argv);
  Result r;
  r.peak_mb = c.peak_mb;
  r.ok = c.ok;
  if (!r.ok) return r;
  if (c.out.contains("ms")) r.ms = c.out["ms"];
  if (c.out.contains("params")) r.params = c.out["params"];
  return r;
}

Result spawn(size_t index, const std::string& mode, int steps) {
  return run_child({"/proc/self/exe", "--child", std::to_string(index), mode, std::to_string(steps)});
}

// ---- Real-size architectures ------------------------------------------------------------

using bench::real_cases;
using bench::RealCase;

std::string real_dir(const RealCase& c) { return std::string("/tmp/hftrain_bench_models_") + c.name; }

// The process's resident memory now and at its peak (VmRSS, VmHWM), in MB.
std::pair<double, double> rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  double now = 0, peak = 0;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) now = std::stod(line.substr(6)) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) peak = std::stod(line.substr(6)) / 1024;
  }
  return {now, peak};
}

// With --trace: the resident memory at each phase of the step, on stderr (where the memory
// beyond 16 bytes per parameter is taken).
class RssTrace : public Callback {
 public:
  std::string name() const override { return "RssTrace"; }
  void on_step_begin(const Args&, State& s, Control&) override { print(s, "step begin"); }
  void on_pre_optimizer_step(const Args&, State& s, Control&) override { print(s, "forward+backward, clipped"); }
  void on_optimizer_step(const Args&, State& s, Control&) override { print(s, "optimizer stepped"); }
  void on_step_end(const Args&, State& s, Control&) override { print(s, "step end"); }

 private:
  static void print(const State& s, const char* phase) {
    const auto [now, peak] = rss_mb();
    std::fprintf(stderr, "  step %lld %-26s RSS %7.0f MB, peak so far %7.0f MB\n",
                 static_cast<long long>(s.global_step), phase, now, peak);
  }
};

int64_t unique_parameters(Model& model) {
  std::vector<const void*> seen;
  int64_t n = 0;
  for (const auto& p : model.named_parameters()) {
    if (std::find(seen.begin(), seen.end(), p.value().data_ptr()) != seen.end()) continue;
    seen.push_back(p.value().data_ptr());
    n += p.value().numel();
  }
  return n;
}

// In the child: mode "floor" loads hftrain and stops; "built" builds the model; "plain" and
// "ckpt" run the Trainer for 1 + `steps` optimizer steps (batch x seq tokens of generated
// text, AdamW, clipping at 1.0, no saves) and print the median step time after the first.
int real_child(size_t index, const std::string& mode, int steps) {
  register_builtins();
  compat::configure_host();
  if (mode == "floor") {
    std::printf("{}\n");
    return 0;
  }
  const RealCase& c = real_cases()[index];
  const json config = json::parse(c.config);
  if (mode == "built") {
    ModelOptions opts;
    opts.type = config["model_type"];
    opts.config = config;
    at::manual_seed(42);
    auto model = model_create(opts);
    std::printf("%s\n", json{{"params", unique_parameters(*model)}}.dump().c_str());
    return 0;
  }
  ConfigSource src;
  config_merge_text(src, fmt::format(R"(output_dir: {}
overwrite_output_dir: true
max_steps: {}
per_device_train_batch_size: {}
learning_rate: 1.0e-4
weight_decay: 0.01
save_strategy: "no"
logging_steps: {}
gradient_checkpointing: {}
metrics: []
model: {{type: {}, config: {}}}
data: {{block_size: {}, validation_split_percentage: 0, train: {{format: generated, num_bytes: {}}}}}
)",
                                     real_dir(c), steps + 1, c.batch, steps + 1, mode == "ckpt" ? "true" : "false",
                                     config["model_type"].get<std::string>(), config.dump(), c.seq,
                                     c.seq * c.batch * (steps + 4)),
                    "bench");
  if (mode == "lora")  // r 16 on every projection, as PEFT users commonly set it
    config_merge_text(src, "peft: {r: 16, lora_alpha: 32, target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, "
                           "up_proj, down_proj]}\n", "bench");
  const Config cfg = config_resolve(src);
  std::unique_ptr<Trainer> trainer = bench::make_trainer(cfg, real_dir(c));
  std::vector<double> times;
  trainer->callbacks().add(std::make_unique<bench::StepTimer>(&times));
  if (std::getenv("HFTRAIN_BENCH_TRACE")) trainer->callbacks().add(std::make_unique<RssTrace>());
  trainer->train(nullptr);
  std::printf("%s\n", json{{"ms", bench::median_after(times, 1) * 1e3}}.dump().c_str());
  return 0;
}

Result real_spawn(size_t index, const std::string& mode, int steps) {
  return run_child({"/proc/self/exe", "--real-child", std::to_string(index), mode, std::to_string(steps)});
}

// The same step in Python PyTorch, with torch's default threads (as users run it; one intra-op
// thread, hftrain's layout, measured the same at this size).
Result python_spawn(const RealCase& c, int steps, bool ckpt) {
  const std::string config_path = real_dir(c) + ".json";
  std::ofstream(config_path) << c.config;
  return run_child({"/usr/bin/python3", std::string(HFTRAIN_SOURCE) + "/bench/python_llama.py", config_path,
                    std::to_string(c.seq), std::to_string(c.batch), std::to_string(steps), "0", ckpt ? "1" : "0"});
}

int real_main(int steps, const std::string& only, const std::string& runs) {
  register_builtins();
  compat::configure_host();
  const Result floor = real_spawn(0, "floor", steps);
  const Result py_floor = run_child({"/usr/bin/python3", "-c", "import torch, json; print(json.dumps({}))"});
  std::printf("real-size causal LMs, batch x sequence 1 x 512, whole optimizer steps (AdamW, clipping), median of "
              "%d after 1 warm-up; peak resident memory of the whole process (hftrain's floor %.0f MB, Python + torch "
              "%.0f MB); 16 B/param = float32 weights + gradients + AdamW's two moments\n",
              steps, floor.peak_mb, py_floor.peak_mb);
  std::printf("%-14s %-12s %9s %9s %10s %12s %11s\n", "model", "run", "step s", "/ hftrain", "peak MB",
              "peak B/param", "beyond 16B");
  json summary = {{"bench", "models_real"}, {"steps", steps}, {"floor_mb", floor.peak_mb},
                  {"python_floor_mb", py_floor.peak_mb}};
  for (size_t i = 0; i < real_cases().size(); ++i) {
    const RealCase& c = real_cases()[i];
    if (!only.empty() && only != c.name) continue;
    const Result built = real_spawn(i, "built", steps);
    const double n = built.params;
    struct Row {
      std::string run;
      Result r;
      double floor_mb;
    };
    // Each run is measured only when --runs asks for it (default: all).
    std::vector<Row> rows;
    auto add = [&](const std::string& run, const std::function<Result()>& measure, double floor_mb) {
      if (runs.empty() || ("," + runs + ",").find("," + run + ",") != std::string::npos) rows.push_back({run, measure(), floor_mb});
    };
    add("hftrain", [&] { return real_spawn(i, "plain", steps); }, floor.peak_mb);
    add("hftrain ckpt", [&] { return real_spawn(i, "ckpt", steps); }, floor.peak_mb);
    add("hftrain lora", [&] { return real_spawn(i, "lora", steps); }, floor.peak_mb);
    add("python", [&] { return python_spawn(c, steps, false); }, py_floor.peak_mb);
    add("python ckpt", [&] { return python_spawn(c, steps, true); }, py_floor.peak_mb);
    const double weights_mb = 16.0 * n / (1 << 20);
    std::printf("%-14s %.1fM parameters: 16 B/param = %.0f MB; the built model alone %.0f MB\n", c.name, n / 1e6,
                weights_mb, built.peak_mb);
    json entry = {{"params", n}, {"sixteen_bytes_mb", weights_mb}, {"built_mb", built.peak_mb}};
    for (const Row& row : rows) {
      // Python's rows against hftrain's same run; LoRA's against full fine-tuning.
      const bool ckpt = row.run.find("ckpt") != std::string::npos;
      double hf_ms = NAN;
      for (const Row& other : rows)
        if (other.run == (ckpt ? "hftrain ckpt" : "hftrain")) hf_ms = other.r.ms;
      const double beyond = row.r.peak_mb - row.floor_mb - weights_mb;
      std::printf("%-14s %-12s %9.2f %8.2fx %10.0f %12.1f %8.0f MB\n", "", row.run.c_str(), row.r.ms / 1e3,
                  row.r.ms / hf_ms, row.r.peak_mb, (row.r.peak_mb - row.floor_mb) * (1 << 20) / n, beyond);
      entry[row.run] = {{"ms", row.r.ms}, {"peak_mb", row.r.peak_mb}, {"ok", row.r.ok}};
    }
    summary[c.name] = entry;
  }
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "--child") == 0) return child(std::stoul(argv[2]), argv[3], std::stoi(argv[4]));
  if (argc >= 5 && std::strcmp(argv[1], "--real-child") == 0)
    return real_child(std::stoul(argv[2]), argv[3], std::stoi(argv[4]));
  int steps = 3;
  bool real = false;
  std::string only, runs;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 < argc && std::string(argv[i]) == "--runs") runs = argv[i + 1];
    if (std::string(argv[i]) == "--real") real = true;
    if (i + 1 < argc && std::string(argv[i]) == "--steps") steps = std::stoi(argv[i + 1]);
    if (i + 1 < argc && std::string(argv[i]) == "--only") only = argv[i + 1];
  }
  if (real) return real_main(steps, only, runs);
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
