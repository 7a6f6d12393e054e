// AdamW against torch.optim.AdamW's trajectories (golden/optimizers.json, 20 steps).
#include "hftrain/core/torch_compat.h"
#include "hftrain/io/pickle.h"
#include "hftrain/optim/adamw.h"
#include "optim/optim_test_util.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cmath>

using hftrain::test::golden;
using hftrain::test::read_json;
using json = nlohmann::json;

namespace {

using hftrain::test::require_close;
using hftrain::test::tensor_of;

// The golden recipe: w (4,3) and b (3) in one group, AdamW(lr 1e-2, weight_decay 0.01).
struct AdamWRecipe {
  json g = read_json(golden("optimizers.json"));
  at::Tensor w = tensor_of(g["initial"]["w"]).set_requires_grad(true);
  at::Tensor b = tensor_of(g["initial"]["b"]).set_requires_grad(true);
  hftrain::AdamW opt;
  explicit AdamWRecipe(bool amsgrad, bool fused = false) : opt({group(w, b)}, {0.9, 0.999, 1e-8, amsgrad, fused}) {}
  static hftrain::ParamGroup group(const at::Tensor& w, const at::Tensor& b) {
    hftrain::ParamGroup group;
    group.params = {w, b};
    group.lr = 1e-2;
    group.weight_decay = 0.01;
    return group;
  }
  void step(size_t t) {  // with the golden gradients of step t
    w.mutable_grad() = tensor_of(g["grads"][t]["w"]);
    b.mutable_grad() = tensor_of(g["grads"][t]["b"]);
    opt.step();
  }
};

void run_case(const std::string& name, bool amsgrad, bool fused = false) {
  AdamWRecipe r(amsgrad, fused);
  for (size_t t = 0; t < 20; ++t) {
    r.step(t);
    const json& ref = r.g["trajectories"][name][t];
    require_close(r.w.detach(), tensor_of(ref["w"]), name + " w step " + std::to_string(t));
    require_close(r.b.detach(), tensor_of(ref["b"]), name + " b step " + std::to_string(t));
  }
}

}  // namespace

TEST_CASE("AdamW follows torch.optim.AdamW's trajectory for 20 steps", "[unit][optim]") { run_case("adamw", false); }

TEST_CASE("AdamW with amsgrad follows torch.optim.AdamW(amsgrad=True)", "[unit][optim]") {
  run_case("adamw_amsgrad", true);
}

// adamw_torch_fused: torch's fused kernel rounds its float32 arithmetic its own way, within
// the trajectory tolerance of torch's foreach AdamW. Where LibTorch has no such kernel (before
// 2.4) asking for it is a user error naming the version.
TEST_CASE("fused AdamW follows torch.optim.AdamW's trajectories, or is refused before LibTorch 2.4", "[unit][optim]") {
  if (!hftrain::compat::kHasFusedAdamW) {
    hftrain::test::require_error(hftrain::Error::kUser, [] { AdamWRecipe r(false, true); },
                                 {"adamw_torch_fused needs LibTorch 2.4 or newer", TORCH_VERSION});
    return;
  }
  run_case("adamw", false, true);
  run_case("adamw_amsgrad", true, true);
}

TEST_CASE("AdamW state_dict has torch's layout and values after 3 steps", "[unit][optim]") {
  AdamWRecipe r(false);
  for (size_t t = 0; t < 3; ++t) r.step(t);
  const json& g = r.g;
  c10::IValue sd = r.opt.state_dict();
  auto d = sd.toGenericDict();
  const json& layout = g["state_dict_layout_after_3_steps"]["adamw"];
  const json& values = g["adamw_state_dict_after_3_steps"];
  auto state = d.at("state").toGenericDict();
  REQUIRE(state.size() == 2);
  for (int64_t i = 0; i < 2; ++i) {
    auto ps = state.at(i).toGenericDict();
    const std::string key = std::to_string(i);
    for (const auto& [field, spec] : layout["state"][key].items()) {
      at::Tensor t = ps.at(field).toTensor();
      CHECK(t.scalar_type() == at::kFloat);
      CHECK(t.dim() == static_cast<int64_t>(spec["shape"].size()));
    }
    CHECK(ps.at("step").toTensor().item<double>() == 3.0);
    const json& v = values["state"][key];
    require_close(ps.at("exp_avg").toTensor(), tensor_of(v["exp_avg"]), "exp_avg");
    require_close(ps.at("exp_avg_sq").toTensor(), tensor_of(v["exp_avg_sq"]), "exp_avg_sq");
  }
  auto groups = d.at("param_groups").toList();
  REQUIRE(groups.size() == 1);
  auto pg = groups.get(0).toGenericDict();
  for (const auto& [k, _] : layout["param_groups"][0].items()) CHECK(pg.contains(k));
  CHECK(pg.at("betas").toTuple()->elements().at(1).toDouble() == 0.999);
  CHECK(pg.at("foreach").isNone());
}

TEST_CASE("Python's torch.optim.AdamW loads hftrain's optimizer.pt and its next step equals hftrain's",
          "[integration][optim][python]") {
  REQUIRE(hftrain::test::python_torch_available());
  hftrain::test::TempDir dir("adamw-py");
  AdamWRecipe r(false);
  for (size_t t = 0; t < 3; ++t) r.step(t);
  hftrain::io::pickle_save_file(dir.str() + "/optimizer.pt", r.opt.state_dict());
  c10::impl::GenericDict params(c10::StringType::get(), c10::AnyType::get());
  params.insert("w", r.w.detach().clone());
  params.insert("b", r.b.detach().clone());
  params.insert("gw", tensor_of(r.g["grads"][3]["w"]));
  params.insert("gb", tensor_of(r.g["grads"][3]["b"]));
  hftrain::io::pickle_save_file(dir.str() + "/params.pt", params);
  r.step(3);  // hftrain's step 4
  auto py = hftrain::test::run_python(dir.str(), R"PY(
import sys, torch
d = sys.argv[1]
p = torch.load(d + "/params.pt")
w = p["w"].clone().requires_grad_(True); b = p["b"].clone().requires_grad_(True)
opt = torch.optim.AdamW([w, b], lr=1e-2, weight_decay=0.01)
opt.load_state_dict(torch.load(d + "/optimizer.pt"))
w.grad, b.grad = p["gw"], p["gb"]
opt.step()
torch.save({"w": w.detach(), "b": b.detach()}, d + "/after.pt")
)PY", dir.str());
  INFO(py.output);
  REQUIRE(py.exit_code == 0);
  auto after = hftrain::io::pickle_load_file(dir.str() + "/after.pt").toGenericDict();
  CHECK(at::equal(after.at("w").toTensor(), r.w.detach()));
  CHECK(at::equal(after.at("b").toTensor(), r.b.detach()));
}
