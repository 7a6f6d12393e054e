#include "hftrain/optim/adamw.h"

#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/adamw_update.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/optim/state_dict_util.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>
#include <ATen/core/Dict.h>
#include <fmt/ranges.h>

#include <cmath>

namespace hftrain {

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad().reset();
}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options) : options_(options) {
  adamw_check_fused(options_.fused);
  groups_ = std::move(groups);
  for (const auto& g : groups_) state_.emplace_back(g.params.size());
}

void adamw_check_fused(bool fused) {
  HFT_CHECK(!fused || compat::kHasFusedAdamW,
            "optim adamw_torch_fused needs LibTorch 2.4 or newer (torch's fused AdamW kernel), and this hftrain is built "
            "on LibTorch {}; use adamw_torch (the same arithmetic)", TORCH_VERSION);
}

// torch's lazy state: zero moments (and max moment) shaped as the parameter, at its first step.
void AdamW::init_state(State& s, const at::Tensor& p) const {
  if (s.exp_avg.defined()) return;
  s.exp_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
  s.exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Preserve);
  if (options_.amsgrad) s.max_exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Preserve);
}

void AdamW::step() {
  at::NoGradGuard no_grad;
  const double b1 = options_.beta1, b2 = options_.beta2;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (options_.fused) {
      fused_step(g, state_[gi]);
      continue;
    }
    // Parameters are batched by their step count, so the bias corrections are scalars.
    std::vector<at::Tensor> params, grads, m, v, vmax;
    std::vector<at::Scalar> step_size, bc2_sqrt;
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      if (!p.grad().defined()) continue;
      State& s = state_[gi][i];
      init_state(s, p);
      s.step += 1;
      // Python computes these in double from the float32 step tensor's value.
      double t = static_cast<double>(static_cast<float>(s.step));
      step_size.emplace_back(-(g.lr / (1 - std::pow(b1, t))));
      bc2_sqrt.emplace_back(std::sqrt(1 - std::pow(b2, t)));
      params.push_back(p);
      grads.push_back(p.grad());
      m.push_back(s.exp_avg);
      v.push_back(s.exp_avg_sq);
      if (options_.amsgrad) vmax.push_back(s.max_exp_avg_sq);
    }
    if (params.empty()) continue;
    if (one_pass_step(g, params, grads, m, v, step_size, bc2_sqrt)) continue;
    // In chunks of about 64 MiB of parameters: the square-root temporaries then stay that
    // small (a step over all parameters at once would hold a fourth copy of the model, as
    // Python's per-parameter loop does not). The arithmetic is elementwise, so chunking
    // changes no value.
    constexpr int64_t kChunkBytes = int64_t{64} << 20;
    for (size_t begin = 0; begin < params.size();) {
      size_t end = begin;
      for (int64_t bytes = 0; end < params.size() && (end == begin || bytes < kChunkBytes); ++end)
        bytes += params[end].numel() * static_cast<int64_t>(params[end].element_size());
      auto part = [&](const std::vector<at::Tensor>& all) {
        return std::vector<at::Tensor>(all.begin() + begin, all.begin() + end);
      };
      std::vector<at::Tensor> p = part(params), gr = part(grads), mm = part(m), vv = part(v);
      const std::vector<at::Scalar> size(step_size.begin() + begin, step_size.begin() + end),
          bc2(bc2_sqrt.begin() + begin, bc2_sqrt.begin() + end);
      at::_foreach_mul_(p, 1 - g.lr * g.weight_decay);
      at::_foreach_mul_(mm, b1);
      at::_foreach_add_(mm, gr, 1 - b1);
      at::_foreach_mul_(vv, b2);
      at::_foreach_addcmul_(vv, gr, gr, 1 - b2);
      std::vector<at::Tensor> denom;
      if (options_.amsgrad) {
        for (size_t i = begin; i < end; ++i) at::maximum_out(vmax[i], vmax[i], v[i]);
        denom = at::_foreach_sqrt(part(vmax));
      } else {
        denom = at::_foreach_sqrt(vv);
      }
      at::_foreach_div_(denom, bc2);
      at::_foreach_add_(denom, options_.eps);
      at::_foreach_addcdiv_(p, mm, denom, size);
      begin = end;
    }
  }
}

// The fusion `adamw`: every parameter in one pass (kernels/adamw_update.h), where all of the
// group's are float32 on the CPU and amsgrad is off; false leaves the step to the foreach path.
bool AdamW::one_pass_step(const ParamGroup& g, const std::vector<at::Tensor>& params,
                          const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& m,
                          const std::vector<at::Tensor>& v, const std::vector<at::Scalar>& step_size,
                          const std::vector<at::Scalar>& bc2_sqrt) const {
  if (!fusions().adamw || options_.amsgrad) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (!adamw_update_applies(params[i], grads[i]) || !m[i].is_contiguous() || !v[i].is_contiguous()) return false;
  std::vector<AdamWUpdate> updates;
  for (size_t i = 0; i < params.size(); ++i)
    updates.push_back({params[i], grads[i], m[i], v[i], -step_size[i].toDouble(), bc2_sqrt[i].toDouble()});
  adamw_update(updates, g.lr, g.weight_decay, options_.beta1, options_.beta2, options_.eps);
  return true;
}

// torch's _fused_adamw: the step tensors are incremented, then one kernel updates every
// parameter of the group (weight decay, moments, bias corrections) in float32 arithmetic.
void AdamW::fused_step(ParamGroup& g, std::vector<State>& state) {
  std::vector<at::Tensor> params, grads, m, v, vmax, steps;
  for (size_t i = 0; i < g.params.size(); ++i) {
    at::Tensor& p = g.params[i];
    if (!p.grad().defined()) continue;
    State& s = state[i];
    init_state(s, p);
    if (!s.step_t.defined()) s.step_t = at::full({}, static_cast<double>(s.step), p.options().dtype(at::kFloat));
    s.step += 1;
    params.push_back(p);
    grads.push_back(p.grad());
    m.push_back(s.exp_avg);
    v.push_back(s.exp_avg_sq);
    if (options_.amsgrad) vmax.push_back(s.max_exp_avg_sq);
    steps.push_back(s.step_t);
  }
  if (params.empty()) return;
  at::_foreach_add_(steps, 1);
  compat::fused_adamw_(params, grads, m, v, vmax, steps, g.lr, options_.beta1, options_.beta2, g.weight_decay,
                       options_.eps, options_.amsgrad);
}

c10::IValue AdamW::state_dict() const {
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList groups(c10::AnyType::get());
  int64_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    c10::impl::GenericList ids(c10::IntType::get());
    for (size_t i = 0; i < g.params.size(); ++i, ++index) {
      ids.push_back(index);
      const State& s = state_[gi][i];
      if (!s.exp_avg.defined()) continue;  // torch omits parameters never stepped
      c10::impl::GenericDict ps(c10::StringType::get(), c10::AnyType::get());
      ps.insert("step", at::scalar_tensor(static_cast<double>(s.step), at::kFloat));
      ps.insert("exp_avg", s.exp_avg);
      ps.insert("exp_avg_sq", s.exp_avg_sq);
      if (options_.amsgrad) ps.insert("max_exp_avg_sq", s.max_exp_avg_sq);
      state.insert(index, ps);
    }
    // Key order of torch's packed group: the Trainer's weight_decay first, then defaults.
    c10::impl::GenericDict pg(c10::StringType::get(), c10::AnyType::get());
    pg.insert("weight_decay", g.weight_decay);
    pg.insert("lr", g.lr);
    pg.insert("betas", c10::ivalue::Tuple::create({options_.beta1, options_.beta2}));
    pg.insert("eps", options_.eps);
    pg.insert("amsgrad", options_.amsgrad);
    pg.insert("foreach", c10::IValue());
    pg.insert("maximize", false);
    pg.insert("capturable", false);
    if (g.initial_lr >= 0) pg.insert("initial_lr", g.initial_lr);
    pg.insert("params", ids);
    groups.push_back(pg);
  }
  c10::impl::GenericDict out(c10::StringType::get(), c10::AnyType::get());
  out.insert("state", state);
  out.insert("param_groups", groups);
  return out;
}

using optim_state::as_double;
using optim_state::dict_get;

void AdamW::load_state_dict(const c10::IValue& sd, const std::string& where) {
  c10::IValue groups_v = dict_get(sd, "param_groups", where);
  HFT_CHECK(groups_v.isList(), "{}: param_groups must be a list", where);
  auto groups = groups_v.toList();
  HFT_CHECK(groups.size() == groups_.size(), "{}: {} parameter groups, this model has {}", where, groups.size(),
            groups_.size());
  auto state = dict_get(sd, "state", where).toGenericDict();
  std::vector<std::vector<State>> loaded(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    c10::IValue pg = groups.get(gi);
    auto ids = dict_get(pg, "params", where).toList();
    HFT_CHECK(ids.size() == groups_[gi].params.size(), "{}: group {} has {} parameters, this model has {}", where, gi,
              ids.size(), groups_[gi].params.size());
    auto betas = dict_get(pg, "betas", where);
    HFT_CHECK(betas.isTuple() || betas.isList(), "{}: betas must be a pair", where);
    groups_[gi].lr = as_double(dict_get(pg, "lr", where), "lr", where);
    groups_[gi].weight_decay = as_double(dict_get(pg, "weight_decay", where), "weight_decay", where);
    auto pgd = pg.toGenericDict();
    if (pgd.contains("initial_lr")) groups_[gi].initial_lr = as_double(pgd.at("initial_lr"), "initial_lr", where);
    loaded[gi].resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      c10::IValue id = ids.get(i);
      auto it = state.find(id);
      if (it == state.end()) continue;
      const at::Tensor& p = groups_[gi].params[i];
      State& s = loaded[gi][i];
      auto tensor = [&](const char* key) {
        at::Tensor t = dict_get(it->value(), key, where).toTensor();
        HFT_CHECK(t.sizes() == p.sizes(), "{}: state {} of parameter {} has shape [{}], the parameter has [{}]", where, key,
                  id.toInt(), fmt::join(t.sizes(), ","), fmt::join(p.sizes(), ","));
        return t.to(p.options()).clone();
      };
      at::Tensor step = dict_get(it->value(), "step", where).toTensor();
      s.step = static_cast<int64_t>(step.item<double>());
      s.exp_avg = tensor("exp_avg");
      s.exp_avg_sq = tensor("exp_avg_sq");
      if (options_.amsgrad) s.max_exp_avg_sq = tensor("max_exp_avg_sq");
    }
  }
  state_ = std::move(loaded);
}

OptimizerEntry adamw_torch_optimizer() {
  OptimizerEntry e;
  e.name = "adamw_torch";
  e.create = [](const TrainingArguments& a, std::vector<ParamGroup> groups, const OptimArgs&) -> std::unique_ptr<Optimizer> {
    return std::make_unique<AdamW>(std::move(groups), AdamWOptions{a.adam_beta1, a.adam_beta2, a.adam_epsilon, false, false});
  };
  return e;
}

OptimizerEntry adamw_torch_fused_optimizer() {
  OptimizerEntry e;
  e.name = "adamw_torch_fused";
  e.create = [](const TrainingArguments& a, std::vector<ParamGroup> groups, const OptimArgs&) -> std::unique_ptr<Optimizer> {
    return std::make_unique<AdamW>(std::move(groups), AdamWOptions{a.adam_beta1, a.adam_beta2, a.adam_epsilon, false, true});
  };
  e.check = [] { adamw_check_fused(true); };
  return e;
}

}  // namespace hftrain
