// SGD, Adagrad, RMSprop and Adafactor against the trajectories torch.optim and transformers'
// Adafactor produced (golden/optimizers.json, 20 steps), their state_dict layout after 3 steps,
// resume through optimizer.pt, and Python's torch.optim loading what hftrain wrote.
#include "hftrain/io/pickle.h"
#include "hftrain/optim/adafactor.h"
#include "hftrain/optim/adagrad.h"
#include "hftrain/optim/rmsprop.h"
#include "hftrain/optim/sgd.h"
#include "optim/optim_test_util.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <ATen/core/Dict.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>

using hftrain::Error;
using hftrain::ParamGroup;
using hftrain::test::golden;
using hftrain::test::require_error;
using ordered_json = nlohmann::ordered_json;  // keeps the golden layout's key order

namespace {

const ordered_json& optimizers_golden() {
  static const ordered_json g = [] {
    std::ifstream in(golden("optimizers.json"));
    REQUIRE(in);
    return ordered_json::parse(in);
  }();
  return g;
}

using hftrain::test::require_close;
using hftrain::test::tensor_of;

// The constructor arguments in golden["defaults"][name], which torch/HF reported back.
// One parameter group per entry of `params`.
std::unique_ptr<hftrain::Optimizer> make_optimizer(const std::string& name,
                                                   const std::vector<std::vector<at::Tensor>>& params) {
  const ordered_json& d = optimizers_golden()["defaults"][name];
  std::vector<ParamGroup> groups(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    groups[i].params = params[i];
    if (!d["lr"].is_null()) groups[i].lr = d["lr"].get<double>();
    groups[i].weight_decay = d["weight_decay"].get<double>();
  }
  if (name.rfind("sgd", 0) == 0)
    return std::make_unique<hftrain::SGD>(
        groups,
        hftrain::SGDOptions{d["momentum"].get<double>(), d["dampening"].get<double>(), d["nesterov"].get<bool>()});
  if (name == "adagrad")
    return std::make_unique<hftrain::Adagrad>(
        groups, hftrain::AdagradOptions{d["lr_decay"].get<double>(), d["initial_accumulator_value"].get<double>(),
                                        d["eps"].get<double>()});
  if (name.rfind("rmsprop", 0) == 0)
    return std::make_unique<hftrain::RMSprop>(
        groups, hftrain::RMSpropOptions{d["alpha"].get<double>(), d["eps"].get<double>(), d["momentum"].get<double>(),
                                        d["centered"].get<bool>()});
  REQUIRE(name.rfind("adafactor", 0) == 0);
  hftrain::AdafactorOptions o;
  if (!d["lr"].is_null()) o.lr = d["lr"].get<double>();
  o.eps1 = d["eps"][0].get<double>();
  o.eps2 = d["eps"][1].get<double>();
  o.clip_threshold = d["clip_threshold"].get<double>();
  o.decay_rate = d["decay_rate"].get<double>();
  if (!d["beta1"].is_null()) o.beta1 = d["beta1"].get<double>();
  o.scale_parameter = d["scale_parameter"].get<bool>();
  o.relative_step = d["relative_step"].get<bool>();
  o.warmup_init = d["warmup_init"].get<bool>();
  return std::make_unique<hftrain::Adafactor>(groups, o);
}

// The golden recipe: w (4,3) and b (3) in one group; grads[t] before step t.
struct Recipe {
  std::string name;
  at::Tensor w, b;
  std::unique_ptr<hftrain::Optimizer> opt;
  explicit Recipe(std::string n, const ordered_json& start = optimizers_golden()["initial"]) : name(std::move(n)) {
    w = tensor_of(start["w"]).set_requires_grad(true);
    b = tensor_of(start["b"]).set_requires_grad(true);
    opt = make_optimizer(name, {{w, b}});
  }
  void step(size_t t) {
    w.mutable_grad() = tensor_of(optimizers_golden()["grads"][t]["w"]);
    b.mutable_grad() = tensor_of(optimizers_golden()["grads"][t]["b"]);
    opt->step();
  }
  // After step t: (w, b) against trajectories[name][t]; returns the larger max |delta|.
  double check(size_t t) const {
    const ordered_json& ref = optimizers_golden()["trajectories"][name][t];
    const std::string at = name + " step " + std::to_string(t);
    return std::max(require_close(w.detach(), tensor_of(ref["w"]), at + " w"),
                    require_close(b.detach(), tensor_of(ref["b"]), at + " b"));
  }
};

void run_trajectory(const std::string& name) {
  Recipe r(name);
  double worst = 0;
  for (size_t t = 0; t < 20; ++t) {
    r.step(t);
    worst = std::max(worst, r.check(t));
  }
  INFO(name << ": max |delta| over 20 steps = " << worst);
  SUCCEED();
}

const std::vector<std::string> kNames = {"sgd_nesterov", "sgd", "adagrad", "rmsprop_centered_momentum", "rmsprop",
                                         "adafactor_fixed_lr", "adafactor_default"};
const std::vector<std::string> kTorchNames = {"sgd_nesterov", "sgd", "adagrad", "rmsprop_centered_momentum",
                                              "rmsprop"};

// One value of our state_dict against the golden layout's description of it.
void check_layout_value(const c10::IValue& v, const ordered_json& spec, const std::string& what) {
  INFO(what << " should be " << spec.dump());
  const std::string kind = spec["kind"];
  if (kind == "tensor") {
    REQUIRE(v.isTensor());
    CHECK(v.toTensor().scalar_type() == at::kFloat);
    CHECK(spec["dtype"] == "float32");
    CHECK(v.toTensor().sizes().vec() == spec["shape"].get<std::vector<int64_t>>());
  } else if (kind == "int") {
    REQUIRE(v.isInt());
    CHECK(v.toInt() == spec["value"].get<int64_t>());
  } else {
    REQUIRE(kind == "NoneType");
    CHECK(v.isNone());
  }
}

// A group hyper-parameter against the JSON value Python's json module wrote for it.
void check_group_value(const c10::IValue& v, const ordered_json& ref, const std::string& what) {
  INFO(what << " should be " << ref.dump());
  if (ref.is_null()) {
    CHECK(v.isNone());
  } else if (ref.is_boolean()) {
    REQUIRE(v.isBool());
    CHECK(v.toBool() == ref.get<bool>());
  } else if (ref.is_number()) {
    REQUIRE((v.isDouble() || v.isInt()));
    CHECK((v.isDouble() ? v.toDouble() : static_cast<double>(v.toInt())) == ref.get<double>());
  } else if (ref.is_array()) {  // a tuple (Adafactor's eps) or the params list
    std::vector<c10::IValue> items = v.isTuple() ? v.toTuple()->elements().vec() : v.toList().vec();
    REQUIRE(items.size() == ref.size());
    for (size_t i = 0; i < items.size(); ++i) check_group_value(items[i], ref[i], what + "[" + std::to_string(i) + "]");
  } else {
    FAIL("unexpected layout value");
  }
}

}  // namespace

TEST_CASE("SGD with nesterov momentum and weight decay follows torch.optim.SGD for 20 steps", "[unit][optim]") {
  run_trajectory("sgd_nesterov");
}

TEST_CASE("plain SGD follows torch.optim.SGD(lr=0.1) for 20 steps", "[unit][optim]") { run_trajectory("sgd"); }

TEST_CASE("Adagrad follows torch.optim.Adagrad(lr=0.1) for 20 steps", "[unit][optim]") { run_trajectory("adagrad"); }

TEST_CASE("centered RMSprop with momentum follows torch.optim.RMSprop for 20 steps", "[unit][optim]") {
  run_trajectory("rmsprop_centered_momentum");
}

TEST_CASE("RMSprop with defaults follows torch.optim.RMSprop for 20 steps", "[unit][optim]") {
  run_trajectory("rmsprop");
}

TEST_CASE("Adafactor with a fixed lr follows transformers' Adafactor for 20 steps", "[unit][optim]") {
  run_trajectory("adafactor_fixed_lr");
}

TEST_CASE("Adafactor with relative step and parameter scaling follows transformers' Adafactor for 20 steps",
          "[unit][optim]") {
  run_trajectory("adafactor_default");
}

TEST_CASE("each optimizer's state_dict after 3 steps has torch's/HF's layout", "[unit][optim]") {
  for (const std::string& name : kNames) {
    SECTION(name) {
      Recipe r(name);
      for (size_t t = 0; t < 3; ++t) r.step(t);
      const ordered_json& layout = optimizers_golden()["state_dict_layout_after_3_steps"][name];
      auto sd = r.opt->state_dict().toGenericDict();
      std::vector<std::string> top;
      for (const auto& e : sd) top.push_back(e.key().toStringRef());
      CHECK(top == layout["top_level_keys"].get<std::vector<std::string>>());
      auto state = sd.at("state").toGenericDict();
      REQUIRE(state.size() == layout["state"].size());
      CHECK(layout["state_key_type"] == "int");
      for (const auto& [key, fields] : layout["state"].items()) {
        auto ps = state.at(static_cast<int64_t>(std::stoi(key))).toGenericDict();
        std::vector<std::string> ours, theirs;
        for (const auto& e : ps) ours.push_back(e.key().toStringRef());
        for (const auto& [field, _] : fields.items()) theirs.push_back(field);
        CHECK(ours == theirs);  // same keys in the same insertion order
        for (const auto& [field, spec] : fields.items())
          check_layout_value(ps.at(field), spec, name + " state " + key + " " + field);
      }
      auto groups = sd.at("param_groups").toList();
      REQUIRE(groups.size() == layout["param_groups"].size());
      auto pg = groups.get(0).toGenericDict();
      // Same keys; the order differs on purpose (weight_decay first, as in the Trainer's groups).
      CHECK(pg.size() == layout["param_groups"][0].size());
      for (const auto& [k, v] : layout["param_groups"][0].items()) {
        INFO(name << " param_groups[0] key " << k);
        REQUIRE(pg.contains(k));
        check_group_value(pg.at(k), v, name + " param_groups[0]." + k);
      }
    }
  }
}

TEST_CASE("state_dict -> optimizer.pt -> a fresh optimizer continues with identical numbers", "[unit][optim]") {
  hftrain::test::TempDir dir("optimizers");
  for (const std::string& name : kNames) {
    SECTION(name) {
      Recipe a(name);
      for (size_t t = 0; t < 3; ++t) a.step(t);
      const std::string path = dir.str() + "/" + name + ".pt";
      hftrain::io::pickle_save_file(path, a.opt->state_dict());
      // A fresh model at the same weights, as a resume sees it.
      ordered_json start;
      start["w"] = optimizers_golden()["trajectories"][name][2]["w"];
      start["b"] = optimizers_golden()["trajectories"][name][2]["b"];
      Recipe b(name, start);
      b.w.detach().copy_(a.w.detach());
      b.b.detach().copy_(a.b.detach());
      b.opt->load_state_dict(hftrain::io::pickle_load_file(path), path);
      for (size_t t = 3; t < 20; ++t) {
        a.step(t);
        b.step(t);
        INFO(name << " step " << t);
        REQUIRE(at::equal(a.w.detach(), b.w.detach()));
        REQUIRE(at::equal(a.b.detach(), b.b.detach()));
        b.check(t);
      }
    }
  }
}

TEST_CASE("Adafactor::last_lr is the lr of the group's first parameter's last step", "[unit][optim]") {
  const ordered_json& g = optimizers_golden();
  Recipe fixed("adafactor_fixed_lr");
  Recipe relative("adafactor_default");
  auto& fixed_opt = dynamic_cast<hftrain::Adafactor&>(*fixed.opt);
  auto& relative_opt = dynamic_cast<hftrain::Adafactor&>(*relative.opt);
  CHECK(relative_opt.last_lr(0) == 0.0);
  for (size_t t = 0; t < 5; ++t) {
    // HF: max(eps2, RMS(w before the step)) * min(1e-2, 1/sqrt(step)).
    at::Tensor w_before = tensor_of(t == 0 ? g["initial"]["w"] : g["trajectories"]["adafactor_default"][t - 1]["w"]);
    const double rms = std::sqrt(w_before.pow(2).mean().item<double>());
    fixed.step(t);
    relative.step(t);
    CHECK(fixed_opt.last_lr(0) == 1e-3);
    const double want = std::max(1e-3, rms) * std::min(1e-2, 1 / std::sqrt(t + 1.0));
    CHECK(relative_opt.last_lr(0) == Approx(want).epsilon(1e-6));
  }
}

TEST_CASE("optimizer constructors refuse bad options with torch's and HF's messages", "[unit][optim]") {
  ParamGroup group;
  group.params = {at::zeros({2}).set_requires_grad(true)};
  using hftrain::AdafactorOptions;
  using hftrain::AdagradOptions;
  using hftrain::RMSpropOptions;
  using hftrain::SGDOptions;
  const auto kUser = Error::kUser;
  require_error(kUser, [&] { hftrain::SGD({group}, SGDOptions{0, 0, true}); },
                {"Nesterov momentum requires a momentum and zero dampening", "nesterov"});
  require_error(kUser, [&] { hftrain::SGD({group}, SGDOptions{0.9, 0.1, true}); },
                {"Nesterov momentum requires a momentum and zero dampening", "dampening 0.1"});
  require_error(kUser, [&] { hftrain::SGD({group}, SGDOptions{-0.5, 0, false}); }, {"momentum", "-0.5"});
  ParamGroup negative_wd = group;
  negative_wd.weight_decay = -1;
  require_error(kUser, [&] { hftrain::SGD({negative_wd}, SGDOptions{}); }, {"weight_decay", "-1"});
  ParamGroup negative_lr = group;
  negative_lr.lr = -0.1;
  require_error(kUser, [&] { hftrain::Adagrad({negative_lr}, AdagradOptions{}); }, {"learning rate", "-0.1"});
  require_error(kUser, [&] { hftrain::Adagrad({group}, AdagradOptions{-1, 0, 1e-10}); }, {"lr_decay", "-1"});
  require_error(kUser, [&] { hftrain::Adagrad({group}, AdagradOptions{0, -2, 1e-10}); },
                {"initial_accumulator_value", "-2"});
  require_error(kUser, [&] { hftrain::Adagrad({group}, AdagradOptions{0, 0, -1e-10}); }, {"eps"});
  require_error(kUser, [&] { hftrain::RMSprop({group}, RMSpropOptions{-0.99, 1e-8, 0, false}); },
                {"alpha", "-0.99"});
  require_error(kUser, [&] { hftrain::RMSprop({group}, RMSpropOptions{0.99, -1e-8, 0, false}); }, {"eps"});
  require_error(kUser, [&] { hftrain::RMSprop({group}, RMSpropOptions{0.99, 1e-8, -0.9, false}); },
                {"momentum", "-0.9"});
  AdafactorOptions lr_and_relative;
  lr_and_relative.lr = 1e-3;
  require_error(kUser, [&] { hftrain::Adafactor({group}, lr_and_relative); },
                {"Cannot combine manual `lr` and `relative_step=True` options"});
  AdafactorOptions warmup_fixed;
  warmup_fixed.relative_step = false;
  warmup_fixed.warmup_init = true;
  require_error(kUser, [&] { hftrain::Adafactor({group}, warmup_fixed); },
                {"`warmup_init=True` requires `relative_step=True`"});
}

TEST_CASE("load_state_dict refuses a state_dict of another shape, naming the file", "[unit][optim]") {
  const std::string where = "checkpoint-3/optimizer.pt";
  for (const std::string& name : kNames) {
    SECTION(name) {
      Recipe r(name);
      for (size_t t = 0; t < 3; ++t) r.step(t);
      c10::IValue sd = r.opt->state_dict();
      // One parameter fewer in the group.
      auto one = make_optimizer(name, {{at::zeros({4, 3})}});
      require_error(Error::kUser, [&] { one->load_state_dict(sd, where); }, {where, "2 parameters", "has 1"});
      auto two = make_optimizer(name, {{at::zeros({4, 3})}, {at::zeros({3})}});
      require_error(Error::kUser, [&] { two->load_state_dict(sd, where); }, {where, "1 parameter groups"});
      // w of another shape: its state tensors no longer fit (plain SGD keeps no tensors).
      if (name != "sgd") {
        auto reshaped = make_optimizer(name, {{at::zeros({3, 4}), at::zeros({3})}});
        require_error(Error::kUser, [&] { reshaped->load_state_dict(sd, where); }, {where, "parameter 0", "shape"});
      }
      // Not a state_dict at all.
      require_error(Error::kUser, [&] { r.opt->load_state_dict(c10::IValue(int64_t(3)), where); },
                    {where, "param_groups"});
    }
  }
}

TEST_CASE("Python's torch.optim loads hftrain's SGD/Adagrad/RMSprop optimizer.pt and steps on the golden path",
          "[optim][python]") {
  if (!hftrain::test::python_torch_available()) return;
  hftrain::test::TempDir dir("optimizers-py");
  for (const std::string& name : kTorchNames) {
    Recipe r(name);
    for (size_t t = 0; t < 3; ++t) r.step(t);
    hftrain::io::pickle_save_file(dir.str() + "/" + name + ".pt", r.opt->state_dict());
  }
  // For each optimizer: the reference torch run's state_dict after 3 steps must match ours in
  // structure, Python types and values; then torch, resumed from ours, must follow the golden
  // trajectory for steps 3..19.
  auto run = hftrain::test::run_python(dir.str(), R"PY(
import json, sys, torch
golden, folder = sys.argv[1], sys.argv[2]
g = json.load(open(golden))
classes = {'sgd': torch.optim.SGD, 'adagrad': torch.optim.Adagrad, 'rmsprop': torch.optim.RMSprop}
names = ['sgd_nesterov', 'sgd', 'adagrad', 'rmsprop_centered_momentum', 'rmsprop']

def close(a, b):
    return bool(((a - b).abs() <= 2e-6 + 1e-6 * b.abs()).all())

def number(x):
    return type(x) in (int, float)

def same(ours, ref, path):
    if number(ref):  # a hyper-parameter torch keeps as the int it was given: 0 == 0.0
        assert number(ours) and ours == ref, (path, ours, ref)
        return
    assert type(ours) is type(ref), (path, type(ours), type(ref))
    if isinstance(ref, dict):
        assert list(ours) == list(ref), (path, list(ours), list(ref))
        for k in ref:
            same(ours[k], ref[k], f'{path}[{k!r}]')
    elif isinstance(ref, (list, tuple)):
        assert len(ours) == len(ref), path
        for i, (a, b) in enumerate(zip(ours, ref)):
            same(a, b, f'{path}[{i}]')
    elif torch.is_tensor(ref):
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, (path, ours, ref)
        assert close(ours, ref), (path, ours, ref)
    else:
        assert ours == ref, (path, ours, ref)

for name in names:
    cls = classes[name.split('_')[0]]
    kwargs = g['defaults'][name]
    w = torch.nn.Parameter(torch.tensor(g['initial']['w']))
    b = torch.nn.Parameter(torch.tensor(g['initial']['b']))
    ref = cls([w, b], **kwargs)
    for t in range(3):
        w.grad, b.grad = torch.tensor(g['grads'][t]['w']), torch.tensor(g['grads'][t]['b'])
        ref.step()
    ours = torch.load(f'{folder}/{name}.pt')
    # torch's group keys come in defaults order; ours lead with weight_decay (Trainer order).
    same(ours['state'], ref.state_dict()['state'], name + ".state")
    # torch 1.13's keys; later torch adds options at their defaults (SGD's fused), which
    # load_state_dict fills in.
    added = {'fused', 'capturable', 'decoupled_weight_decay'}
    for og, rg in zip(ours['param_groups'], ref.state_dict()['param_groups']):
        assert set(og) <= set(rg) and set(rg) - set(og) <= added, (name, sorted(og), sorted(rg))
        for k in og:
            same(og[k], rg[k], f'{name}.param_groups[{k!r}]')

    w = torch.nn.Parameter(torch.tensor(g['trajectories'][name][2]['w']))
    b = torch.nn.Parameter(torch.tensor(g['trajectories'][name][2]['b']))
    opt = cls([w, b], **kwargs)
    opt.load_state_dict(ours)
    for t in range(3, 20):
        w.grad, b.grad = torch.tensor(g['grads'][t]['w']), torch.tensor(g['grads'][t]['b'])
        opt.step()
        want = g['trajectories'][name][t]
        assert close(w.detach(), torch.tensor(want['w'])), (name, t, 'w')
        assert close(b.detach(), torch.tensor(want['b'])), (name, t, 'b')
    print(name, 'ok')
)PY",
                                           "'" + golden("optimizers.json") + "' '" + dir.str() + "'");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  for (const std::string& name : kTorchNames) CHECK_THAT(run.output, Catch::Matchers::Contains(name + " ok"));
}
