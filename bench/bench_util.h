// What the benches share: medians, and the Trainer's per-step wall time.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/lora.h"
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/train/callback.h"
#include "hftrain/train/trainer.h"

#include <ATen/Functions.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hftrain::bench {

using Clock = std::chrono::steady_clock;

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

// The median after `warmup` values: robust to the noise of a shared machine.
inline double median_after(std::vector<double> t, size_t warmup) {
  t.erase(t.begin(), t.begin() + std::min(warmup, t.size()));
  return median(std::move(t));
}

// Per-step wall time inside the Trainer, from on_step_begin to on_step_end; `wait` (a device
// synchronize on a GPU) runs before each reading, so a step's queued kernels count in it.
class StepTimer : public Callback {
 public:
  explicit StepTimer(std::vector<double>* out, std::function<void()> wait = {}) : out_(out), wait_(std::move(wait)) {}
  std::string name() const override { return "StepTimer"; }
  void on_step_begin(const Args&, State&, Control&) override {
    if (wait_) wait_();
    t0_ = Clock::now();
  }
  void on_step_end(const Args&, State&, Control&) override {
    if (wait_) wait_();
    out_->push_back(std::chrono::duration<double>(Clock::now() - t0_).count());
  }

 private:
  std::vector<double>* out_;
  std::function<void()> wait_;
  Clock::time_point t0_;
};

// A bare loop's model, optimizer and schedule, as the Trainer builds them from config `c`:
// seeded as HF seeds, HF's decay and no-decay groups, AdamW, the schedule with 2 warm-up steps.
struct BareSetup {
  std::shared_ptr<Model> model;
  std::vector<at::Tensor> params;
  std::unique_ptr<AdamW> opt;
  std::unique_ptr<LambdaLR> sched;

  BareSetup(const Config& c, int64_t steps, c10::Device device = c10::Device(c10::kCPU)) {
    at::manual_seed(static_cast<uint64_t>(c.args.seed));
    model = model_create(c.model);
    model->to(device);
    model->train();
    ParamGroup decay, no_decay;
    decay.lr = no_decay.lr = c.args.learning_rate;
    decay.weight_decay = c.args.weight_decay;
    for (const auto& p : model->named_parameters()) {
      (model->is_no_decay(p.key()) ? no_decay : decay).params.push_back(p.value());
      params.push_back(p.value());
    }
    opt = std::make_unique<AdamW>(std::vector<ParamGroup>{decay, no_decay}, AdamWOptions{});
    sched = std::make_unique<LambdaLR>(*opt, c.args.lr_scheduler_type, 2, steps);
  }
};

// The Trainer as `hftrain train` builds it from config `c`: the tokenizer, the datasets, the
// model seeded as HF seeds it, and output_dir `out`.
inline std::unique_ptr<Trainer> make_trainer(const Config& c, const std::string& out) {
  std::shared_ptr<const Tokenizer> tok(tokenizer_registry().create(c.data.tokenizer));
  Datasets ds = datasets_load(c.data, *tok);
  at::manual_seed(static_cast<uint64_t>(c.args.seed));
  std::shared_ptr<Model> model = model_create(c.model);
  if (c.peft) lora_prepare(*model, *c.peft, c.peft->adapter);  // as run.cpp adapts it
  std::filesystem::create_directories(out);
  return std::make_unique<Trainer>(c, model, tok, std::move(ds));
}

// The benches' training config: `steps` optimizer steps of AdamW (lr 1e-3, weight decay 0.01,
// cosine with 2 warm-up steps) at `batch` windows of `block_size` tokens of the built-in
// generated text (`num_bytes` of it), one log at the end, no saves, no metrics, the model
// section `model` (JSON), into `out`.
inline std::string step_config_yaml(const std::string& out, int64_t steps, int64_t batch, const std::string& model,
                                    int64_t block_size, int64_t num_bytes) {
  return fmt::format(R"(output_dir: {}
overwrite_output_dir: true
max_steps: {}
per_device_train_batch_size: {}
learning_rate: 1.0e-3
weight_decay: 0.01
lr_scheduler_type: cosine
warmup_steps: 2
logging_steps: {}
save_strategy: "no"
metrics: []
model: {}
data: {{block_size: {}, validation_split_percentage: 0, train: {{format: generated, num_bytes: {}}}}}
)",
                     out, steps, batch, steps, model, block_size, num_bytes);
}

// A child process's peak resident memory (wait4's ru_maxrss) and the last JSON object its
// standard output printed; ok is false when it failed or printed none (its output then goes
// to stderr).
struct ChildResult {
  nlohmann::json out;
  double peak_mb = 0;
  bool ok = false;
};

inline ChildResult run_child(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe(fds) != 0) std::exit(1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string text;
  char buf[256];
  for (ssize_t k; (k = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(k));
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  ChildResult r;
  r.peak_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  const size_t at = text.rfind("\n{");
  r.out = nlohmann::json::parse(text.substr(at == std::string::npos ? 0 : at + 1), nullptr, false);
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && r.out.is_object();
  if (!r.ok) std::fprintf(stderr, "%s failed (status %d): %s\n", argv[0].c_str(), status, text.c_str());
  return r;
}

// Real-size architectures: the hub's config.json (random weights), batch x sequence.
struct RealCase {
  const char* name;
  const char* config;
  int64_t batch, seq;
};

inline const std::vector<RealCase>& real_cases() {
  static const std::vector<RealCase> c = {
      {"smollm2-360m", R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 960, "initializer_range": 0.02,
        "intermediate_size": 2560, "max_position_embeddings": 8192, "mlp_bias": false, "model_type": "llama",
        "num_attention_heads": 15, "num_hidden_layers": 32, "num_key_value_heads": 5, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 100000, "tie_word_embeddings": true,
        "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 49152})", 1, 512},
      {"qwen2.5-0.5b", R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
        "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
        "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})", 1, 512},
  };
  return c;
}

}  // namespace hftrain::bench
