// AdamW's one-pass update against torch's foreach arithmetic it replaces (the fusion off):
// the parameters' changes (within 1e-5 relative) and the moments (1e-6) after 10 steps, on tensors large enough for
// several threads and chunks, small ones, two groups and a parameter without a gradient.
#include "hftrain/kernels/fusions.h"
#include "hftrain/optim/adamw.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <vector>

using hftrain::test::rel_diff;

TEST_CASE("AdamW's one-pass update follows the foreach arithmetic within float rounding", "[unit][kernels][optim]") {
  at::manual_seed(9);
  const std::vector<int64_t> sizes = {300001, 37, 5000, 1};
  std::vector<at::Tensor> init, grads;
  for (int64_t n : sizes) init.push_back(at::randn({n}));
  for (int step = 0; step < 10; ++step)
    for (int64_t n : sizes) grads.push_back(at::randn({n}).mul(step % 3 == 0 ? 1e-4 : 1.0));
  std::vector<std::vector<at::Tensor>> result;
  for (bool fused : {false, true}) {
    hftrain::fusions().adamw = fused;
    std::vector<at::Tensor> params;
    for (const at::Tensor& t : init) params.push_back(t.clone().requires_grad_());
    hftrain::ParamGroup decay, no_decay;
    decay.params = {params[0], params[1]};
    decay.lr = no_decay.lr = 3e-3;
    decay.weight_decay = 0.1;
    no_decay.params = {params[2], params[3]};
    hftrain::AdamW opt({decay, no_decay}, {0.9, 0.95, 1e-8, false, false});
    for (int step = 0; step < 10; ++step) {
      for (size_t i = 0; i < sizes.size(); ++i)
        params[i].mutable_grad() = (step == 4 && i == 3) ? at::Tensor() : grads[step * sizes.size() + i];
      opt.step();
    }
    hftrain::fusions() = hftrain::Fusions{};
    std::vector<at::Tensor> r;
    // The parameters' changes, so that the comparison is relative to what the steps moved.
    for (size_t i = 0; i < params.size(); ++i) r.push_back(params[i].detach() - init[i]);
    const auto state = opt.state_dict().toGenericDict().at("state").toGenericDict();
    for (const auto& e : state) {
      r.push_back(e.value().toGenericDict().at("exp_avg").toTensor());
      r.push_back(e.value().toGenericDict().at("exp_avg_sq").toTensor());
    }
    result.push_back(r);
  }
  REQUIRE(result[0].size() == result[1].size());
  for (size_t i = 0; i < result[0].size(); ++i) {
    INFO("tensor " << i);
    CHECK(rel_diff(result[1][i], result[0][i]) <= (i < sizes.size() ? 1e-5 : 1e-6));
  }
}
