// The frame every torch.optim state_dict shares, written and checked in one place:
//   {"state": {index: {name: value}}, "param_groups": [{hyper-parameters..., "params": [indices]}]}
// Each optimizer fills in its own per-parameter entries and group hyper-parameters.
#pragma once

#include "hftrain/optim/optimizer.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include <optional>
#include <string>
#include <vector>

namespace hftrain::optim_state {

using Dict = c10::impl::GenericDict;

Dict new_dict();  // str -> any, insertion-ordered like a Python dict

// A packed group starts with the Trainer's "weight_decay" (its groups are built as
// {"params", "weight_decay"} and torch appends the defaults after); the optimizer then adds
// its own keys, and finish_group adds the scheduler's "initial_lr" and the indices.
Dict begin_group(const ParamGroup& g);
void finish_group(Dict& pg, const ParamGroup& g, int64_t first_index);

c10::IValue make_state_dict(c10::impl::GenericDict state, c10::impl::GenericList groups);
c10::impl::GenericDict new_state();  // int -> any
c10::impl::GenericList new_groups();

// ---- reading (every mismatch is a user error naming `where`) ----

c10::IValue dict_get(const c10::IValue& d, const std::string& key, const std::string& where);
double as_double(const c10::IValue& v, const std::string& what, const std::string& where);

struct SavedGroup {
  // The packed group, "params" included.
  Dict group{c10::StringType::get(), c10::AnyType::get()};
  std::vector<int64_t> ids;         // per parameter of the group: its index in "state"
  std::vector<c10::IValue> states;  // per parameter: its state dict, or None if never stepped
  std::optional<double> lr;         // None in Adafactor's relative-step groups
  double weight_decay = 0;
  double initial_lr = -1;
};

// Checks the group count and each group's parameter count against `groups` and returns each
// parameter's saved state. Nothing changes until apply_groups.
std::vector<SavedGroup> read_groups(const c10::IValue& sd, const std::vector<ParamGroup>& groups,
                                    const std::string& where);
// Replaces lr, weight_decay and initial_lr, as torch's load_state_dict replaces the group's
// hyper-parameters. Call it once every tensor has been read.
void apply_groups(const std::vector<SavedGroup>& saved, std::vector<ParamGroup>& groups);

// state[key] as a tensor of `shape`: a copy with `options` (the parameter's dtype and
// device, as torch's load_state_dict casts it).
at::Tensor read_tensor(const c10::IValue& state, const char* key, at::IntArrayRef shape,
                       const at::TensorOptions& options, int64_t id, const std::string& where);
// state[key] as a tensor of p's shape, or undefined when it is None.
at::Tensor read_optional_tensor(const c10::IValue& state, const char* key, const at::Tensor& p,
                                int64_t id, const std::string& where);
// "step": a Python int or a 0-d tensor (torch writes either, depending on the class).
double read_step(const c10::IValue& state, const std::string& where);

// The common shape of state_dict: write(State, Dict& entry) fills a parameter's entry and
// returns false to leave the parameter out (never stepped); group(ParamGroup, Dict&) adds the
// group's hyper-parameters between begin_group and finish_group.
template <typename State, typename Write, typename Group>
c10::IValue save_states(const std::vector<ParamGroup>& groups, const std::vector<std::vector<State>>& states,
                        Write write, Group group) {
  c10::impl::GenericDict state = new_state();
  c10::impl::GenericList packed = new_groups();
  int64_t index = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const ParamGroup& g = groups[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      Dict entry = new_dict();
      if (write(states[gi][i], entry)) state.insert(index + static_cast<int64_t>(i), entry);
    }
    Dict pg = begin_group(g);
    group(g, pg);
    finish_group(pg, g, index);
    packed.push_back(pg);
    index += static_cast<int64_t>(g.params.size());
  }
  return make_state_dict(state, packed);
}

// The common shape of load_state_dict: every parameter's saved state is read into a fresh
// [group][parameter] table by read(state, param, id, State&); a parameter saved without state
// (None) gets on_none(param, State&). The groups' hyper-parameters are applied only after
// everything was read, so a bad file changes nothing.
template <typename State, typename Read, typename OnNone>
std::vector<std::vector<State>> load_states(const c10::IValue& sd, std::vector<ParamGroup>& groups,
                                            const std::string& where, Read read, OnNone on_none) {
  std::vector<SavedGroup> saved = read_groups(sd, groups, where);
  std::vector<std::vector<State>> loaded(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    loaded[gi].resize(groups[gi].params.size());
    for (size_t i = 0; i < loaded[gi].size(); ++i) {
      const c10::IValue& ps = saved[gi].states[i];
      if (ps.isNone()) on_none(groups[gi].params[i], loaded[gi][i]);
      else read(ps, groups[gi].params[i], saved[gi].ids[i], loaded[gi][i]);
    }
  }
  apply_groups(saved, groups);
  return loaded;
}

template <typename State, typename Read>
std::vector<std::vector<State>> load_states(const c10::IValue& sd, std::vector<ParamGroup>& groups,
                                            const std::string& where, Read read) {
  return load_states<State>(sd, groups, where, read, [](const at::Tensor&, State&) {});
}

}  // namespace hftrain::optim_state
