#include "hftrain/optim/state_dict_util.h"

#include "hftrain/core/error.h"

#include <ATen/core/Tensor.h>
#include <fmt/ranges.h>

namespace hftrain::optim_state {

Dict new_dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }
c10::impl::GenericDict new_state() { return c10::impl::GenericDict(c10::IntType::get(), c10::AnyType::get()); }
c10::impl::GenericList new_groups() { return c10::impl::GenericList(c10::AnyType::get()); }

Dict begin_group(const ParamGroup& g) {
  Dict pg = new_dict();
  pg.insert("weight_decay", g.weight_decay);
  return pg;
}

void finish_group(Dict& pg, const ParamGroup& g, int64_t first_index) {
  if (g.initial_lr >= 0) pg.insert("initial_lr", g.initial_lr);
  c10::impl::GenericList ids(c10::IntType::get());
  for (size_t i = 0; i < g.params.size(); ++i) ids.push_back(first_index + static_cast<int64_t>(i));
  pg.insert("params", ids);
}

c10::IValue make_state_dict(c10::impl::GenericDict state, c10::impl::GenericList groups) {
  Dict out = new_dict();
  out.insert("state", std::move(state));
  out.insert("param_groups", std::move(groups));
  return out;
}

c10::IValue dict_get(const c10::IValue& d, const std::string& key, const std::string& where) {
  HFT_CHECK(d.isGenericDict(), "{}: expected a dict holding \"{}\"", where, key);
  auto dict = d.toGenericDict();
  auto it = dict.find(key);
  HFT_CHECK(it != dict.end(), "{}: missing key \"{}\"", where, key);
  return it->value();
}

double as_double(const c10::IValue& v, const std::string& what, const std::string& where) {
  HFT_CHECK(v.isDouble() || v.isInt(), "{}: {} must be a number", where, what);
  return v.isDouble() ? v.toDouble() : static_cast<double>(v.toInt());
}

std::vector<SavedGroup> read_groups(const c10::IValue& sd, const std::vector<ParamGroup>& groups,
                                    const std::string& where) {
  c10::IValue groups_v = dict_get(sd, "param_groups", where);
  HFT_CHECK(groups_v.isList(), "{}: param_groups must be a list", where);
  auto saved = groups_v.toList();
  HFT_CHECK(saved.size() == groups.size(), "{}: {} parameter groups, this model has {}", where, saved.size(),
            groups.size());
  c10::IValue state_v = dict_get(sd, "state", where);
  HFT_CHECK(state_v.isGenericDict(), "{}: state must be a dict", where);
  auto state = state_v.toGenericDict();
  std::vector<SavedGroup> out(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    c10::IValue pg = saved.get(gi);
    HFT_CHECK(pg.isGenericDict(), "{}: param_groups[{}] must be a dict", where, gi);
    c10::IValue ids_v = dict_get(pg, "params", where);
    HFT_CHECK(ids_v.isList(), "{}: param_groups[{}].params must be a list", where, gi);
    auto ids = ids_v.toList();
    HFT_CHECK(ids.size() == groups[gi].params.size(), "{}: group {} has {} parameters, this model has {}", where, gi,
              ids.size(), groups[gi].params.size());
    SavedGroup& s = out[gi];
    s.group = pg.toGenericDict();
    for (size_t i = 0; i < ids.size(); ++i) {
      c10::IValue id = ids.get(i);
      HFT_CHECK(id.isInt(), "{}: param_groups[{}].params must hold integers", where, gi);
      s.ids.push_back(id.toInt());
      auto it = state.find(id);
      s.states.push_back(it == state.end() ? c10::IValue() : it->value());
    }
  }
  for (SavedGroup& s : out) {
    c10::IValue lr = dict_get(s.group, "lr", where);
    if (!lr.isNone()) s.lr = as_double(lr, "lr", where);
    s.weight_decay = as_double(dict_get(s.group, "weight_decay", where), "weight_decay", where);
    if (s.group.contains("initial_lr")) s.initial_lr = as_double(s.group.at("initial_lr"), "initial_lr", where);
  }
  return out;
}

void apply_groups(const std::vector<SavedGroup>& saved, std::vector<ParamGroup>& groups) {
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (saved[gi].lr) groups[gi].lr = *saved[gi].lr;
    groups[gi].weight_decay = saved[gi].weight_decay;
    groups[gi].initial_lr = saved[gi].initial_lr;
  }
}

at::Tensor read_tensor(const c10::IValue& state, const char* key, at::IntArrayRef shape,
                       const at::TensorOptions& options, int64_t id, const std::string& where) {
  c10::IValue v = dict_get(state, key, where);
  HFT_CHECK(v.isTensor(), "{}: state {} of parameter {} must be a tensor", where, key, id);
  at::Tensor t = v.toTensor();
  HFT_CHECK(t.sizes() == shape, "{}: state {} of parameter {} has shape [{}], expected [{}]", where, key, id,
            fmt::join(t.sizes(), ","), fmt::join(shape, ","));
  return t.to(options, /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor read_optional_tensor(const c10::IValue& state, const char* key, const at::Tensor& p, int64_t id,
                                const std::string& where) {
  if (dict_get(state, key, where).isNone()) return at::Tensor();
  return read_tensor(state, key, p.sizes(), p.options(), id, where);
}

double read_step(const c10::IValue& state, const std::string& where) {
  c10::IValue v = dict_get(state, "step", where);
  if (v.isTensor()) {
    HFT_CHECK(v.toTensor().numel() == 1, "{}: state step must be a number or a one-element tensor", where);
    return v.toTensor().item<double>();
  }
  return as_double(v, "state step", where);
}

}  // namespace hftrain::optim_state
