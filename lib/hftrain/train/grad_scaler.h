// Dynamic loss scaling for fp16 training, with torch.amp.GradScaler's rules and state:
//   scale(loss) multiplies by the scale; unscale() divides the gradients by it and records
//   whether any element is inf or NaN; step() runs the optimizer unless one was (one host
//   read per optimizer step); update() halves the scale after such a step, and doubles it
//   after growth_interval steps in a row without one.
// torch's fused kernels (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_)
// are CUDA-only in LibTorch 1.13: plain tensor ops do the same on any device, so the scaler
// works, and is tested, on the CPU too.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hftrain {

class Optimizer;

struct GradScalerOptions {  // torch's defaults
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions o = {});

  // loss * scale, for backward (the scale lives on the loss's device; no host read).
  at::Tensor scale(const at::Tensor& loss);
  // Once per optimizer step, before clipping: the optimizer's gradients times 1/scale, and
  // the step's found-inf flag set if any of them holds an inf or NaN.
  void unscale(Optimizer& opt);
  // Unscales if unscale() was not called, then steps the optimizer unless a gradient was
  // not finite. Returns whether it stepped.
  bool step(Optimizer& opt);
  // After step(): the new scale, and the per-step state reset.
  void update();

  double get_scale() const { return scale_; }  // a float32 value, as torch keeps it
  int64_t growth_tracker() const { return growth_tracker_; }

  // torch's GradScaler.state_dict(): {"scale", "growth_factor", "backoff_factor",
  // "growth_interval", "_growth_tracker"}; load_state_dict checks it, naming `where`.
  c10::IValue state_dict() const;
  void load_state_dict(const c10::IValue& state, const std::string& where);

 private:
  GradScalerOptions opt_;
  float scale_;
  int64_t growth_tracker_ = 0;
  at::Tensor scale_t_;    // scale_ on the device, refilled when it changes
  at::Tensor found_inf_;  // this step's flag (float 0/1 on the gradients' device)
  enum class Stage { kReady, kUnscaled, kStepped } stage_ = Stage::kReady;
  bool found_inf_read_ = false;
};

}  // namespace hftrain
