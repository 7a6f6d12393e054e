#include <ATen/Functions.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include <catch2/catch.hpp>

#include "hftrain/io/pickle.h"
#include "test_util.h"
#include "test_util.h"

using hftrain::Error;
using hftrain::test::require_error;
using hftrain::test::TempDir;
namespace io = hftrain::io;

TEST_CASE("pickle_save_file writes an optimizer state dict that Python's torch.load reads",
          "[io][pickle][python]") {
  if (!hftrain::test::python_torch_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  TempDir dir("pickle");
  std::string path = dir.str() + "/optimizer.pt";
  // torch.optim.AdamW.state_dict() layout: state keyed by parameter index, then groups.
  c10::impl::GenericDict param0(c10::StringType::get(), c10::AnyType::get());
  param0.insert("step", at::scalar_tensor(3.0));
  param0.insert("exp_avg", at::tensor(std::vector<float>{0.25f, -0.5f, 1.0f}));
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  state.insert(int64_t(0), param0);
  c10::impl::GenericDict group(c10::StringType::get(), c10::AnyType::get());
  group.insert("lr", 0.001);
  group.insert("betas", c10::ivalue::Tuple::create({0.9, 0.999}));
  group.insert("params", c10::List<int64_t>({0}));
  c10::impl::GenericList groups(c10::AnyType::get());
  groups.push_back(group);
  c10::impl::GenericDict top(c10::StringType::get(), c10::AnyType::get());
  top.insert("state", state);
  top.insert("param_groups", groups);
  io::pickle_save_file(path, top);

  auto run = hftrain::test::run_python(dir.str(), R"PY(
import sys, torch
obj = torch.load(sys.argv[1])
assert type(obj) is dict and sorted(obj) == ['param_groups', 'state'], obj
state = obj['state']
assert type(state) is dict and list(state) == [0], state
p0 = state[0]
assert sorted(p0) == ['exp_avg', 'step'], p0
assert torch.is_tensor(p0['step']) and p0['step'].dtype == torch.float32, p0['step']
assert p0['step'].shape == () and p0['step'].item() == 3.0, p0['step']
assert torch.equal(p0['exp_avg'], torch.tensor([0.25, -0.5, 1.0])), p0['exp_avg']
groups = obj['param_groups']
assert type(groups) is list and len(groups) == 1, groups
g = groups[0]
assert type(g['lr']) is float and g['lr'] == 0.001, g
assert type(g['betas']) is tuple and g['betas'] == (0.9, 0.999), g
assert list(g['params']) == [0] and all(type(i) is int for i in g['params']), g
print('ok')
)PY",
                                       "'" + path + "'");
  INFO(run.output);
  CHECK(run.exit_code == 0);
}

TEST_CASE(
    "pickle_load_file reads a dict that Python's torch.save wrote, one-item dicts and lists "
    "included",
    "[io][pickle][python]") {
  if (!hftrain::test::python_torch_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  TempDir dir("pickle");
  std::string path = dir.str() + "/from_python.pt";
  auto run = hftrain::test::run_python(dir.str(), R"PY(
import sys, torch
w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
# One-item dicts and lists pickle as SETITEM / APPEND, which LibTorch 1.13 lacks; 1001
# items pickle as a batch of 1000 (SETITEMS) and one more (SETITEM).
torch.save({'step': 7, 'lr': 0.5, 'name': 'adamw', 'betas': (0.9, 0.999),
            'weight': w, 'same_weight': w,
            'ids': [1, 2, 3],
            'one': [5],
            'nested': {'a': [[1.5]]},
            'big': {i: -i for i in range(1001)},
            'state': {0: torch.tensor([1.5, -2.0], dtype=torch.float64)}}, sys.argv[1])
)PY",
                                       "'" + path + "'");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);

  c10::IValue v = io::pickle_load_file(path);
  REQUIRE(v.isGenericDict());
  auto d = v.toGenericDict();
  CHECK(d.size() == 11);
  CHECK(d.at("step").toInt() == 7);
  CHECK(d.at("lr").toDouble() == 0.5);
  CHECK(d.at("name").toStringRef() == "adamw");
  auto betas = d.at("betas").toTupleRef().elements();
  REQUIRE(betas.size() == 2);
  CHECK(betas[0].toDouble() == 0.9);
  CHECK(betas[1].toDouble() == 0.999);
  at::Tensor w = d.at("weight").toTensor();
  CHECK(w.scalar_type() == at::kFloat);
  CHECK(at::equal(w, at::tensor(std::vector<float>{0, 1, 2, 3, 4, 5}).reshape({2, 3})));
  auto ids = d.at("ids").toList();
  REQUIRE(ids.size() == 3);
  CHECK(ids.get(0).toInt() == 1);
  CHECK(ids.get(2).toInt() == 3);
  CHECK(d.at("same_weight").toTensor().is_same(w));  // one object in Python, one here
  auto one = d.at("one").toList();
  REQUIRE(one.size() == 1);
  CHECK(one.get(0).toInt() == 5);
  auto inner = d.at("nested").toGenericDict().at("a").toList();
  REQUIRE(inner.size() == 1);
  REQUIRE(inner.get(0).toList().size() == 1);
  CHECK(inner.get(0).toList().get(0).toDouble() == 1.5);
  auto big = d.at("big").toGenericDict();
  CHECK(big.size() == 1001);
  CHECK(big.at(int64_t(0)).toInt() == 0);
  CHECK(big.at(int64_t(1000)).toInt() == -1000);
  at::Tensor s0 = d.at("state").toGenericDict().at(int64_t(0)).toTensor();
  CHECK(s0.scalar_type() == at::kDouble);
  CHECK(at::equal(s0, at::tensor(std::vector<double>{1.5, -2.0})));
}

TEST_CASE("HF's rng_state.pth loads: short LONG1 integers read, NumPy's array dropped to None, the rest intact",
          "[io][pickle][python]") {
  if (!hftrain::test::python_torch_available()) return;
  TempDir dir("pickle-rng");
  const std::string path = dir.str() + "/rng_state.pth";
  // What transformers' Trainer._save_rng_state writes on the CPU, and the values to expect.
  auto run = hftrain::test::run_python(dir.str(), R"PY(
import json, random, sys
import numpy as np
import torch
random.seed(7); np.random.seed(7); torch.manual_seed(7)
state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
torch.save(state, sys.argv[1])
json.dump({"python": list(state["python"][1]), "numpy_pos": int(state["numpy"][2]),
           "cpu": state["cpu"].tolist()}, open(sys.argv[1] + ".json", "w"))
)PY",
                                       "'" + path + "'");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const nlohmann::json want = hftrain::test::read_json(path + ".json");

  auto d = io::pickle_load_file(path, /*drop_foreign=*/true).toGenericDict();
  auto python = d.at("python").toTupleRef().elements();
  REQUIRE(python.size() == 3);
  CHECK(python[0].toInt() == 3);
  CHECK(python[2].isNone());
  std::vector<int64_t> words;
  for (const c10::IValue& w : python[1].toTupleRef().elements()) words.push_back(w.toInt());
  CHECK(words == want["python"].get<std::vector<int64_t>>());  // words >= 2^31 come as 5-byte LONG1
  auto numpy = d.at("numpy").toTupleRef().elements();
  REQUIRE(numpy.size() == 5);
  CHECK(numpy[0].toStringRef() == "MT19937");
  CHECK(numpy[1].isNone());  // the ndarray
  CHECK(numpy[2].toInt() == want["numpy_pos"].get<int64_t>());
  at::Tensor cpu = d.at("cpu").toTensor();
  std::vector<int64_t> bytes(cpu.data_ptr<uint8_t>(), cpu.data_ptr<uint8_t>() + cpu.numel());
  CHECK(bytes == want["cpu"].get<std::vector<int64_t>>());
  // Without drop_foreign the NumPy global is an error naming the file, not a crash.
  require_error(Error::kUser, [&] { io::pickle_load_file(path); }, {path, "torch pickle"});
}

TEST_CASE("pickle_load_file returns what pickle_save_file wrote", "[io][pickle]") {
  TempDir dir("pickle");
  std::string path = dir.str() + "/roundtrip.pt";
  at::Tensor t = at::tensor(std::vector<double>{1, -2, 3.5}).reshape({3, 1});
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("t", t);
  d.insert("n", int64_t(42));
  d.insert("one", c10::List<int64_t>({9}));
  io::pickle_save_file(path, d);

  auto got = io::pickle_load_file(path).toGenericDict();
  CHECK(got.size() == 3);
  CHECK(at::equal(got.at("t").toTensor(), t));
  CHECK(got.at("t").toTensor().scalar_type() == at::kDouble);
  CHECK(got.at("n").toInt() == 42);
  CHECK(got.at("one").toList().size() == 1);
}

TEST_CASE("pickle_load_file of a missing file is a user error naming it", "[io][pickle]") {
  TempDir dir("pickle");
  std::string path = dir.str() + "/missing.pt";
  require_error(Error::kUser, [&] { io::pickle_load_file(path); }, {path});
}

TEST_CASE("pickle_load_file of a file that is not a torch pickle is a user error naming it",
          "[io][pickle]") {
  TempDir dir("pickle");
  std::string path = dir.str() + "/garbage.pt";
  hftrain::test::write_bytes(path, "this is not a zip archive");
  require_error(Error::kUser, [&] { io::pickle_load_file(path); }, {path, "torch pickle"});
}
