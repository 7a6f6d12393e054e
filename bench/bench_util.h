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

#include <algorithm>
#include <chrono>
#include <cmath>
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

}  // namespace hftrain::bench
