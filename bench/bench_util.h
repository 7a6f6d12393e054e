// What the benches share: medians, and the Trainer's per-step wall time.
#pragma once

#include "hftrain/train/callback.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
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

}  // namespace hftrain::bench
