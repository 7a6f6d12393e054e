#include "hftrain/optim/adafactor.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hftrain/core/error.h"
#include "hftrain/optim/state_dict_util.h"

namespace hftrain {

namespace {

// HF's _rms: tensor.norm(2) / numel ** 0.5. torch 1.13's Tensor.norm(2) is
// _VF.norm(x, 2, dim=all dims); Python's ** 0.5 is pow.
at::Tensor rms_of(const at::Tensor& t) {
  std::vector<int64_t> dims(static_cast<size_t>(t.dim()));
  std::iota(dims.begin(), dims.end(), 0);
  return at::norm(t, 2, dims, false).div_(std::pow(static_cast<double>(t.numel()), 0.5));
}

bool low_precision(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// HF keeps fp16/bf16 parameters' state in float32 (state is created and moved `.to(grad)`
// after grad = grad.float()).
at::TensorOptions state_options(const at::Tensor& p) {
  return low_precision(p) ? p.options().dtype(at::kFloat) : p.options();
}

// exp_avg_sq_row (..., R) and exp_avg_sq_col (..., C) of a (..., R, C) parameter.
std::vector<int64_t> row_shape(at::IntArrayRef s) {
  return std::vector<int64_t>(s.begin(), s.end() - 1);
}
std::vector<int64_t> col_shape(at::IntArrayRef s) {
  std::vector<int64_t> out(s.begin(), s.end() - 2);
  out.push_back(s.back());
  return out;
}

}  // namespace

Adafactor::Adafactor(std::vector<ParamGroup> groups, AdafactorOptions options) : options_(options) {
  // transformers' Adafactor.__init__ checks, with its messages.
  HFT_CHECK(!(options.lr && options.relative_step),
            "Cannot combine manual `lr` and `relative_step=True` options");
  HFT_CHECK(!(options.warmup_init && !options.relative_step),
            "`warmup_init=True` requires `relative_step=True`");
  groups_ = std::move(groups);
  for (const auto& g : groups_) state_.emplace_back(g.params.size());
}

Adafactor::Lr Adafactor::lr_of(const ParamGroup& g, const State& s) const {
  double rel = g.lr;
  if (options_.relative_step) {
    const double t = static_cast<double>(s.step);
    const double min_step = options_.warmup_init ? 1e-6 * t : 1e-2;
    rel = std::min(min_step, 1.0 / std::sqrt(t));
  }
  Lr lr;
  if (!options_.scale_parameter) {
    lr.value = rel;  // 1.0 * rel
    return lr;
  }
  // max(eps2, RMS) * rel: Python's max keeps eps2 unless RMS > eps2 (compared in float32),
  // and the product is a float32 tensor. Selected on the device, so there is no host sync.
  lr.tensor = at::where(s.rms.gt(options_.eps2), s.rms.mul(rel),
                        at::scalar_tensor(options_.eps2 * rel, s.rms.options()));
  return lr;
}

double Adafactor::last_lr(size_t group) const {
  HFT_CHECK(group < groups_.size(), "Adafactor has {} parameter groups, asked for group {}",
            groups_.size(), group);
  if (state_[group].empty() || state_[group][0].step == 0) return 0.0;
  Lr lr = lr_of(groups_[group], state_[group][0]);
  return lr.tensor.defined() ? lr.tensor.item<double>() : lr.value;
}

void Adafactor::step() {
  at::NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      if (!p.grad().defined()) continue;
      at::Tensor grad = low_precision(p.grad()) ? p.grad().to(at::kFloat) : p.grad();
      const bool factored = grad.dim() >= 2;
      State& s = state_[gi][i];
      if (!s.rms.defined()) {
        if (options_.beta1) s.exp_avg = at::zeros_like(grad);
        if (factored) {
          s.exp_avg_sq_row = at::zeros(row_shape(grad.sizes()), grad.options());
          s.exp_avg_sq_col = at::zeros(col_shape(grad.sizes()), grad.options());
        } else {
          s.exp_avg_sq = at::zeros_like(grad);
        }
      }
      at::Tensor p32 = low_precision(p) ? p.to(at::kFloat) : p;

      s.step += 1;
      s.rms = rms_of(p32);
      const Lr lr = lr_of(g, s);
      const double beta2t = 1.0 - std::pow(static_cast<double>(s.step), options_.decay_rate);

      at::Tensor update = grad.pow(2).add_(options_.eps1);
      if (factored) {
        s.exp_avg_sq_row.mul_(beta2t).add_(update.mean(-1), 1.0 - beta2t);
        s.exp_avg_sq_col.mul_(beta2t).add_(update.mean(-2), 1.0 - beta2t);
        // HF's _approx_sq_grad (from fairseq): rsqrt(row / mean(row)) (..., R, 1) times
        // rsqrt(col) (..., 1, C).
        at::Tensor r = s.exp_avg_sq_row.div(s.exp_avg_sq_row.mean(-1, /*keepdim=*/true))
                           .rsqrt_()
                           .unsqueeze(-1);
        at::Tensor c = s.exp_avg_sq_col.unsqueeze(-2).rsqrt();
        update = at::mul(r, c).mul_(grad);
      } else {
        s.exp_avg_sq.mul_(beta2t).add_(update, 1.0 - beta2t);
        update = s.exp_avg_sq.rsqrt().mul_(grad);
      }
      update.div_(rms_of(update).div_(options_.clip_threshold).clamp_(1.0));
      if (lr.tensor.defined()) {
        update.mul_(lr.tensor);
      } else {
        update.mul_(lr.value);
      }
      if (options_.beta1) {
        s.exp_avg.mul_(*options_.beta1).add_(update, 1 - *options_.beta1);
        update = s.exp_avg;
      }
      if (g.weight_decay != 0) {
        // HF passes -wd * lr as add_'s alpha; with a tensor lr that is a float32 product
        // read back on the host, as Python's argument parser does.
        const double alpha = lr.tensor.defined() ? lr.tensor.mul(-g.weight_decay).item<double>()
                                                 : -g.weight_decay * lr.value;
        p32.add_(p32, alpha);
      }
      p32.sub_(update);  // HF: add_(-update); a - b and a + (-b) round the same
      if (low_precision(p)) p.copy_(p32);
    }
  }
}

c10::IValue Adafactor::state_dict() const {
  return optim_state::save_states(
      groups_, state_,
      [&](const State& s, optim_state::Dict& ps) {
        if (!s.rms.defined()) return false;  // HF creates state on a parameter's first step
        ps.insert("step", s.step);
        if (options_.beta1) ps.insert("exp_avg", s.exp_avg);
        if (s.exp_avg_sq_row.defined()) {
          ps.insert("exp_avg_sq_row", s.exp_avg_sq_row);
          ps.insert("exp_avg_sq_col", s.exp_avg_sq_col);
        } else {
          ps.insert("exp_avg_sq", s.exp_avg_sq);
        }
        ps.insert("RMS", s.rms);
        return true;
      },
      [&](const ParamGroup& g, optim_state::Dict& pg) {
        // HF's relative step requires lr=None; otherwise the group's lr is the one used.
        pg.insert("lr", options_.relative_step ? c10::IValue() : c10::IValue(g.lr));
        pg.insert("eps", c10::ivalue::Tuple::create({options_.eps1, options_.eps2}));
        pg.insert("clip_threshold", options_.clip_threshold);
        pg.insert("decay_rate", options_.decay_rate);
        pg.insert("beta1", options_.beta1 ? c10::IValue(*options_.beta1) : c10::IValue());
        pg.insert("scale_parameter", options_.scale_parameter);
        pg.insert("relative_step", options_.relative_step);
        pg.insert("warmup_init", options_.warmup_init);
      });
}

void Adafactor::load_state_dict(const c10::IValue& sd, const std::string& where) {
  state_ = optim_state::load_states<State>(
      sd, groups_, where, [&](const c10::IValue& ps, const at::Tensor& p, int64_t id, State& s) {
        const at::TensorOptions opts = state_options(p);
        s.step = static_cast<int64_t>(optim_state::read_step(ps, where));
        c10::IValue rms = optim_state::dict_get(ps, "RMS", where);
        if (rms.isTensor()) {
          HFT_CHECK(rms.toTensor().numel() == 1, "{}: state RMS of parameter {} must be a number",
                    where, id);
          s.rms = rms.toTensor().to(opts, false, true).reshape({});
        } else {
          s.rms = at::scalar_tensor(optim_state::as_double(rms, "state RMS", where), opts);
        }
        if (options_.beta1)
          s.exp_avg = optim_state::read_tensor(ps, "exp_avg", p.sizes(), opts, id, where);
        if (p.dim() >= 2) {
          s.exp_avg_sq_row =
              optim_state::read_tensor(ps, "exp_avg_sq_row", row_shape(p.sizes()), opts, id, where);
          s.exp_avg_sq_col =
              optim_state::read_tensor(ps, "exp_avg_sq_col", col_shape(p.sizes()), opts, id, where);
        } else {
          s.exp_avg_sq = optim_state::read_tensor(ps, "exp_avg_sq", p.sizes(), opts, id, where);
        }
      });
}

OptimizerEntry adafactor_optimizer() {
  OptimizerEntry e;
  e.name = "adafactor";
  e.optim_args = {"scale_parameter", "relative_step", "warmup_init", "clip_threshold",
                  "decay_rate", "beta1", "eps1", "eps2"};
  e.create = [](const TrainingArguments& args, std::vector<ParamGroup> groups,
                const OptimArgs& kw) -> std::unique_ptr<Optimizer> {
    AdafactorOptions o;
    o.scale_parameter = kw.flag("scale_parameter", false);  // the Trainer's choice
    o.relative_step = kw.flag("relative_step", false);
    o.warmup_init = kw.flag("warmup_init", false);
    o.clip_threshold = kw.number("clip_threshold", 1.0);
    o.decay_rate = kw.number("decay_rate", -0.8);
    o.eps1 = kw.number("eps1", 1e-30);
    o.eps2 = kw.number("eps2", 1e-3);
    if (kw.has("beta1")) o.beta1 = kw.number("beta1", 0);
    if (!o.relative_step) o.lr = args.learning_rate;
    return std::make_unique<Adafactor>(std::move(groups), o);
  };
  return e;
}

}  // namespace hftrain
