// GPT-2 124M (12 layers, 768 wide, 12 heads, sequence 1024, vocabulary 50257) trained in bf16
// autocast: tokens per second and model FLOPs utilisation of hftrain's Trainer step, beside a
// bare LibTorch loop doing the same work (model, AdamW, clipping, schedule) in the same process.
// The two alternate, round by round; each time is the median step after the warm-up steps,
// with the device synchronised at both ends of every step.
//   build/bench_gpt2 [--steps N] [--rounds R] [--batch B] [--seq T] [--layers L] [--width C]
//                    [--heads H] [--vocab V] [--precision bf16|fp32] [--peak-tflops P]
// MFU = (6 x parameters + 12 x layers x width x sequence) FLOPs per token (PaLM's count, as
// llm.c reports it; the position embeddings left out) x tokens/s / the device's peak, which
// comes from --peak-tflops or, for an H100 or H200, from nvidia-smi's device name (989 dense
// bf16 TFLOP/s, the SXM part's datasheet value). On the CPU, for a smoke run, pass small sizes.
#include "hftrain/builtins.h"
#include "hftrain/config/config.h"
#include "hftrain/core/device.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/collator.h"
#include "hftrain/data/sampler.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/grad_clip.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/train/trainer.h"
#include "bench_util.h"

#include <ATen/Functions.h>
#include <torch/cuda.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

using namespace hftrain;
using bench::Clock;
using json = nlohmann::json;

namespace {

constexpr size_t kWarmup = 3;

struct Options {
  int64_t steps = 20, rounds = 3, batch = 16, seq = 1024, layers = 12, width = 768, heads = 12, vocab = 50257;
  std::string precision = "bf16";
  double peak_tflops = 0;  // 0: from the device name, where known
};

Config make_config(const Options& o, const std::string& out) {
  // Enough generated text for every step's batch, twice over.
  const int64_t bytes = 2 * (o.steps + 1) * o.batch * (o.seq + 1);
  ConfigSource src;
  config_merge_text(src, fmt::format(R"(output_dir: {}
overwrite_output_dir: true
max_steps: {}
per_device_train_batch_size: {}
learning_rate: 6.0e-4
weight_decay: 0.1
max_grad_norm: 1.0
lr_scheduler_type: cosine
warmup_steps: 2
logging_steps: {}
save_strategy: "no"
bf16: {}
metrics: []
model: {{type: gpt2, config: {{vocab_size: {}, n_positions: {}, n_embd: {}, n_layer: {}, n_head: {},
         resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}}}}
data: {{block_size: {}, validation_split_percentage: 0, train: {{format: generated, num_bytes: {}}}}}
)",
                                     out, o.steps, o.batch, o.steps, o.precision == "bf16" ? "true" : "false",
                                     o.vocab, o.seq, o.width, o.layers, o.heads, o.seq, bytes),
                     "bench_gpt2");
  return config_resolve(src);
}

void sync(c10::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

// The Trainer's step written as plainly as LibTorch allows: autocast forward, backward,
// clipping, AdamW, the schedule.
std::vector<double> bare_loop(const Config& c, const LmDataset& train, c10::Device device) {
  bench::BareSetup b(c, c.args.max_steps, device);
  BatchSampler sampler = BatchSampler::random(train.size(), c.args.per_device_train_batch_size, false, 42, 0);
  const at::ScalarType dtype = c.args.bf16 ? at::kBFloat16 : at::kFloat;
  std::vector<double> times;
  for (int64_t s = 0; s < c.args.max_steps; ++s) {
    sync(device);
    const auto t0 = Clock::now();
    Batch host = train.collate(sampler.batch(s % sampler.size()));
    const double n = static_cast<double>(count_label_tokens(host));
    Batch batch = batch_to(std::move(host), device);
    at::Tensor loss;
    {
      compat::AutocastGuard autocast(device.type(), dtype);
      loss = b.model->forward(batch, n).loss;
    }
    loss.backward();
    clip_grad_norm(b.params, c.args.max_grad_norm);
    b.opt->step();
    b.sched->step();
    b.opt->zero_grad();
    sync(device);
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return times;
}

std::vector<double> trainer_loop(const Config& c, const std::string& out, c10::Device device) {
  std::unique_ptr<Trainer> trainer = bench::make_trainer(c, out);
  std::vector<double> times;
  trainer->callbacks().add(std::make_unique<bench::StepTimer>(&times, [device] { sync(device); }));
  trainer->train(nullptr);
  return times;
}

// The device's dense bf16 peak in TFLOP/s, where its name is one this bench knows.
double known_peak_tflops(c10::Device device) {
  if (!device.is_cuda()) return 0;
  FILE* p = popen(fmt::format("nvidia-smi --query-gpu=name --format=csv,noheader -i {} 2>/dev/null", device.index()).c_str(), "r");
  char name[256] = {0};
  if (p) {
    if (!fgets(name, sizeof name, p)) name[0] = 0;
    pclose(p);
  }
  if (std::strstr(name, "H100") || std::strstr(name, "H200")) return 989.0;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  compat::configure_host();
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--steps") o.steps = std::atoll(v.c_str());
    else if (k == "--rounds") o.rounds = std::atoll(v.c_str());
    else if (k == "--batch") o.batch = std::atoll(v.c_str());
    else if (k == "--seq") o.seq = std::atoll(v.c_str());
    else if (k == "--layers") o.layers = std::atoll(v.c_str());
    else if (k == "--width") o.width = std::atoll(v.c_str());
    else if (k == "--heads") o.heads = std::atoll(v.c_str());
    else if (k == "--vocab") o.vocab = std::atoll(v.c_str());
    else if (k == "--precision") o.precision = v;
    else if (k == "--peak-tflops") o.peak_tflops = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "bench_gpt2: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.precision != "bf16" && o.precision != "fp32") {
    std::fprintf(stderr, "bench_gpt2: --precision must be bf16 or fp32, got %s\n", o.precision.c_str());
    return 2;
  }
  register_builtins();
  const std::string out = "/tmp/hftrain_bench_gpt2";
  const Config c = make_config(o, out);
  const c10::Device device = training_device(false, 0);
  auto tok = tokenizer_registry().create(c.data.tokenizer);

  // Parameters of the matmuls (all but the position embeddings; the LM head is wte's).
  at::manual_seed(0);
  double params = 0;
  for (const auto& p : model_create(c.model)->named_parameters())
    if (p.key().find("wpe") == std::string::npos) params += static_cast<double>(p.value().numel());
  const double flops_per_token = 6 * params + 12.0 * static_cast<double>(o.layers * o.width * o.seq);
  const double peak = o.peak_tflops > 0 ? o.peak_tflops : known_peak_tflops(device);
  const double tokens_per_step = static_cast<double>(o.batch * o.seq);

  std::vector<double> bare, hft;
  for (int64_t r = 0; r < o.rounds; ++r) {
    auto run_bare = [&] {
      Datasets ds = datasets_load(c.data, *tok);
      bare.push_back(bench::median_after(bare_loop(c, *ds.train, device), kWarmup));
    };
    auto run_hftrain = [&] { hft.push_back(bench::median_after(trainer_loop(c, out, device), kWarmup)); };
    if (r % 2 == 0) run_bare(), run_hftrain();
    else run_hftrain(), run_bare();
  }
  std::filesystem::remove_all(out);

  const double b = bench::median(bare), h = bench::median(hft);
  auto mfu = [&](double step) { return peak > 0 ? 100 * flops_per_token * tokens_per_step / step / (peak * 1e12) : NAN; };
  std::printf("GPT-2 %lld layers x %lld wide, %lld heads, vocab %lld, batch %lld x %lld tokens, %s, on %s\n",
              (long long)o.layers, (long long)o.width, (long long)o.heads, (long long)o.vocab, (long long)o.batch,
              (long long)o.seq, o.precision.c_str(), device.str().c_str());
  std::printf("%.1fM parameters in matmuls, %.3g GFLOPs per token; peak %s\n", params / 1e6, flops_per_token / 1e9,
              peak > 0 ? fmt::format("{:g} TFLOP/s", peak).c_str() : "unknown (--peak-tflops)");
  std::printf("median of %lld rounds, each the median step after %zu warm-up steps of %lld\n", (long long)o.rounds,
              kWarmup, (long long)o.steps);
  std::printf("%-10s %12s %12s %8s\n", "loop", "ms/step", "tokens/s", "MFU %");
  std::printf("%-10s %12.2f %12.0f %8.1f\n", "bare", 1e3 * b, tokens_per_step / b, mfu(b));
  std::printf("%-10s %12.2f %12.0f %8.1f\n", "hftrain", 1e3 * h, tokens_per_step / h, mfu(h));
  std::printf("hftrain / bare step time: %.3fx\n", h / b);
  json summary{{"device", device.str()},           {"batch", o.batch},
               {"seq", o.seq},                     {"precision", o.precision},
               {"bare_ms", 1e3 * b},               {"hftrain_ms", 1e3 * h},
               {"hftrain_tokens_per_s", tokens_per_step / h},
               {"bare_tokens_per_s", tokens_per_step / b},
               {"hftrain_over_bare", h / b}};
  if (peak > 0) summary["hftrain_mfu_percent"] = mfu(h), summary["bare_mfu_percent"] = mfu(b);
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
