#include "hftrain/train/grad_scaler.h"

#include "hftrain/core/error.h"
#include "hftrain/core/host_sync.h"
#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/state_dict_util.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <cmath>

namespace hftrain {

namespace {

void check_options(const GradScalerOptions& o, const std::string& who) {
  HFT_CHECK(std::isfinite(o.init_scale) && o.init_scale > 0, "{}: the scale must be positive, not {}", who,
            o.init_scale);
  HFT_CHECK(o.growth_factor > 1, "{}: growth_factor must be above 1, not {}", who, o.growth_factor);
  HFT_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1, "{}: backoff_factor must be in (0, 1), not {}", who,
            o.backoff_factor);
  HFT_CHECK(o.growth_interval > 0, "{}: growth_interval must be positive, not {}", who, o.growth_interval);
}

}  // namespace

GradScaler::GradScaler(GradScalerOptions o) : opt_(o), scale_(static_cast<float>(o.init_scale)) {
  check_options(o, "GradScaler");
}

at::Tensor GradScaler::scale(const at::Tensor& loss) {
  if (!scale_t_.defined() || scale_t_.device() != loss.device())
    scale_t_ = at::full({}, scale_, loss.options().dtype(at::kFloat));
  return loss * scale_t_;
}

void GradScaler::unscale(Optimizer& opt) {
  HFT_CHECK(stage_ == Stage::kReady, "GradScaler: unscale() was already called since the last update()");
  // torch: inv_scale = scale.double().reciprocal().float(), and each element times it in float.
  const double inv = static_cast<float>(1.0 / static_cast<double>(scale_));
  std::vector<at::Tensor> grads;
  for (const ParamGroup& g : opt.param_groups())
    for (const at::Tensor& p : g.params) {
      const at::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      HFT_CHECK(grad.scalar_type() != at::kHalf,
                "GradScaler: fp16 gradients cannot be unscaled (the parameters must stay float32)");
      grads.push_back(grad);
    }
  stage_ = Stage::kUnscaled;
  if (grads.empty()) {
    found_inf_ = at::zeros({}, at::kFloat);
  } else if (grads[0].is_cuda()) {  // torch's fused kernel
    found_inf_ = at::zeros({}, grads[0].options().dtype(at::kFloat));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf_, at::full({}, inv, found_inf_.options()));
  } else {
    std::vector<at::Tensor> bad;
    for (const at::Tensor& grad : grads) bad.push_back(at::isfinite(grad).logical_not_().any());
    found_inf_ = at::stack(bad).any().to(at::kFloat);
    at::_foreach_mul_(grads, inv);
  }
}

bool GradScaler::step(Optimizer& opt) {
  if (stage_ == Stage::kReady) unscale(opt);
  HFT_CHECK(stage_ == Stage::kUnscaled, "GradScaler: step() was already called since the last update()");
  found_inf_read_ = host_read<float>(found_inf_) != 0;  // the step's one host read
  if (!found_inf_read_) opt.step();
  stage_ = Stage::kStepped;
  return !found_inf_read_;
}

void GradScaler::update() {
  HFT_CHECK(stage_ == Stage::kStepped, "GradScaler: update() needs a step() first");
  // torch's _amp_update_scale_, in float32 like its kernel.
  const float before = scale_;
  if (found_inf_read_) {
    scale_ = static_cast<float>(static_cast<double>(scale_) * opt_.backoff_factor);
    growth_tracker_ = 0;
  } else if (growth_tracker_ + 1 == opt_.growth_interval) {
    const float grown = static_cast<float>(static_cast<double>(scale_) * opt_.growth_factor);
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  } else {
    growth_tracker_ += 1;
  }
  if (scale_ != before && scale_t_.defined()) scale_t_.fill_(scale_);
  found_inf_ = at::Tensor();
  stage_ = Stage::kReady;
}

c10::IValue GradScaler::state_dict() const {
  optim_state::Dict d = optim_state::new_dict();
  d.insert("scale", static_cast<double>(scale_));
  d.insert("growth_factor", opt_.growth_factor);
  d.insert("backoff_factor", opt_.backoff_factor);
  d.insert("growth_interval", opt_.growth_interval);
  d.insert("_growth_tracker", growth_tracker_);
  return d;
}

void GradScaler::load_state_dict(const c10::IValue& state, const std::string& where) {
  HFT_CHECK(state.isGenericDict() && !state.toGenericDict().empty(),
            "{}: expected GradScaler's state_dict (a dict with scale, growth_factor, backoff_factor, "
            "growth_interval, _growth_tracker)",
            where);
  using optim_state::as_double;
  using optim_state::dict_get;
  GradScalerOptions o;
  o.init_scale = as_double(dict_get(state, "scale", where), "scale", where);
  o.growth_factor = as_double(dict_get(state, "growth_factor", where), "growth_factor", where);
  o.backoff_factor = as_double(dict_get(state, "backoff_factor", where), "backoff_factor", where);
  const c10::IValue interval = dict_get(state, "growth_interval", where);
  const c10::IValue tracker = dict_get(state, "_growth_tracker", where);
  HFT_CHECK(interval.isInt() && tracker.isInt() && tracker.toInt() >= 0,
            "{}: growth_interval and _growth_tracker must be non-negative integers", where);
  o.growth_interval = interval.toInt();
  check_options(o, where);
  opt_ = o;
  scale_ = static_cast<float>(o.init_scale);
  growth_tracker_ = tracker.toInt();
  if (scale_t_.defined()) scale_t_.fill_(scale_);
}

}  // namespace hftrain
