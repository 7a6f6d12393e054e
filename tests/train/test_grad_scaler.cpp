// GradScaler against torch.amp.GradScaler's documented rules (scale 2^16, x0.5 after a
// non-finite gradient, x2 after growth_interval clean steps, the step skipped) and its
// state_dict, which Python's GradScaler.load_state_dict must accept.
#include "hftrain/io/pickle.h"
#include "hftrain/optim/sgd.h"
#include "hftrain/train/grad_scaler.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include <cmath>
#include <limits>

using hftrain::GradScaler;
using hftrain::GradScalerOptions;
using hftrain::test::TempDir;

namespace {

struct Fixture {
  at::Tensor p = torch::tensor({1.0f, 2.0f, 3.0f}, at::TensorOptions().requires_grad(true));
  hftrain::SGD opt{{hftrain::ParamGroup{{p}, 0.5, 0.0}}, {}};
};

}  // namespace

TEST_CASE("GradScaler: an overflowed gradient skips the step and halves the scale", "[unit][amp]") {
  Fixture f;
  GradScaler scaler;
  CHECK(scaler.get_scale() == 65536.0);
  at::Tensor before = f.p.detach().clone();
  f.p.mutable_grad() = torch::tensor({1.0f, std::numeric_limits<float>::infinity(), 2.0f});
  CHECK_FALSE(scaler.step(f.opt));
  scaler.update();
  CHECK(at::equal(f.p.detach(), before));
  CHECK(scaler.get_scale() == 32768.0);
  CHECK(scaler.growth_tracker() == 0);

  // NaN counts as overflow too; the scale keeps backing off.
  f.p.mutable_grad() = torch::tensor({NAN, 0.0f, 0.0f});
  CHECK_FALSE(scaler.step(f.opt));
  scaler.update();
  CHECK(scaler.get_scale() == 16384.0);
}

TEST_CASE("GradScaler: the step sees the unscaled gradient, and the scale grows after the interval", "[unit][amp]") {
  Fixture f;
  GradScalerOptions o;
  o.init_scale = 4.0;
  o.growth_interval = 3;
  GradScaler scaler(o);
  const at::Tensor x = torch::tensor({1.0f, -2.0f, 0.25f});
  for (int step = 1; step <= 4; ++step) {
    at::Tensor before = f.p.detach().clone();
    at::Tensor loss = (f.p * x).sum();
    at::Tensor scaled = scaler.scale(loss);
    CHECK(scaled.item<float>() == loss.item<float>() * static_cast<float>(scaler.get_scale()));
    scaled.backward();
    CHECK(at::equal(f.p.grad(), x * static_cast<float>(scaler.get_scale())));
    CHECK(scaler.step(f.opt));
    scaler.update();
    f.opt.zero_grad();
    // SGD with lr 0.5 on the true gradient x (the scales are powers of two: exact).
    CHECK(at::equal(f.p.detach(), before - 0.5 * x));
    INFO("step " << step);
    CHECK(scaler.get_scale() == (step < 3 ? 4.0 : 8.0));
    CHECK(scaler.growth_tracker() == step % 3);
  }
}

TEST_CASE("GradScaler: unscale before clipping, once per step", "[unit][amp]") {
  Fixture f;
  GradScaler scaler;
  f.p.mutable_grad() = torch::tensor({65536.0f, -131072.0f, 0.0f});
  scaler.unscale(f.opt);
  CHECK(at::equal(f.p.grad(), torch::tensor({1.0f, -2.0f, 0.0f})));
  hftrain::test::require_error(hftrain::Error::kUser, [&] { scaler.unscale(f.opt); }, {"already called"});
  CHECK(scaler.step(f.opt));  // does not unscale again
  CHECK(at::equal(f.p.detach(), torch::tensor({0.5f, 3.0f, 3.0f})));
  scaler.update();
}

TEST_CASE("scaler.pt opens in Python and loads into torch's GradScaler; torch's state loads here",
          "[unit][amp][python]") {
  if (!hftrain::test::python_torch_available()) return;
  TempDir dir("scaler");
  Fixture f;
  GradScalerOptions o;
  o.growth_interval = 5;
  GradScaler scaler(o);
  for (int i = 0; i < 2; ++i) {  // one overflow, then one clean step: scale 32768, tracker 1
    f.p.mutable_grad() = torch::tensor({i == 0 ? INFINITY : 1.0f, 0.0f, 0.0f});
    scaler.step(f.opt);
    scaler.update();
  }
  hftrain::io::pickle_save_file(dir.str() + "/scaler.pt", scaler.state_dict());
  auto run = hftrain::test::run_python(dir.str(), R"PY(
import sys, torch
d = torch.load(sys.argv[1] + '/scaler.pt')
assert list(d) == ['scale', 'growth_factor', 'backoff_factor', 'growth_interval', '_growth_tracker'], list(d)
assert d == {'scale': 32768.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 5,
             '_growth_tracker': 1}, d
assert all(type(d[k]) is float for k in ('scale', 'growth_factor', 'backoff_factor'))
assert all(type(d[k]) is int for k in ('growth_interval', '_growth_tracker'))
# torch disables GradScaler without CUDA; enabled by hand (its scale not yet on a device),
# it takes the state as saved.
s = torch.cuda.amp.GradScaler(enabled=False)
s._enabled, s._scale, s._growth_tracker = True, None, None
s.load_state_dict(d)
assert s.get_scale() == 32768.0 and s._get_growth_tracker() == 1 and s.get_growth_interval() == 5
s._init_scale, s._init_growth_tracker, s._growth_interval = 1024.0, 7, 11
torch.save(s.state_dict(), sys.argv[1] + '/from_torch.pt')
)PY",
                                        "'" + dir.str() + "'");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  GradScaler loaded;
  loaded.load_state_dict(hftrain::io::pickle_load_file(dir.str() + "/from_torch.pt"), "from_torch.pt");
  CHECK(loaded.get_scale() == 1024.0);
  CHECK(loaded.growth_tracker() == 7);
}

TEST_CASE("GradScaler: a state that is not GradScaler's is refused, naming the file", "[unit][amp]") {
  GradScaler scaler;
  auto dict = [] { return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()); };
  hftrain::test::require_error(hftrain::Error::kUser, [&] { scaler.load_state_dict(dict(), "ckpt/scaler.pt"); },
                               {"ckpt/scaler.pt", "GradScaler's state_dict"});
  auto d = dict();
  d.insert("scale", -1.0);
  d.insert("growth_factor", 2.0);
  d.insert("backoff_factor", 0.5);
  d.insert("growth_interval", int64_t{2000});
  d.insert("_growth_tracker", int64_t{0});
  hftrain::test::require_error(hftrain::Error::kUser, [&] { scaler.load_state_dict(d, "ckpt/scaler.pt"); },
                               {"ckpt/scaler.pt", "scale must be positive"});
  CHECK(scaler.get_scale() == 65536.0);  // unchanged
}
