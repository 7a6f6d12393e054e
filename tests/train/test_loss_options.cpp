// The Trainer's loss options against their Python definitions: transformers' LabelSmoother
// (run in Python's torch on the same inputs) and NEFTune's noise bound.
#include "hftrain/models/layers.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cmath>

using hftrain::test::TempDir;
using json = nlohmann::json;

namespace {

// Inputs both sides make from the same closed form: logits sin(0.37 i) * 3 over (B,T,V) and
// labels (7 k) mod V, with every fifth label -100.
at::Tensor make_logits(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return at::arange(n, at::kDouble).mul(0.37).sin().mul(3).to(at::kFloat).reshape(shape);
}
at::Tensor make_labels(std::vector<int64_t> shape, int64_t V) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  at::Tensor k = at::arange(n, at::kLong);
  return at::where(k.remainder(5).eq(4), at::full_like(k, -100), k.mul(7).remainder(V)).reshape(shape);
}

// transformers 5.15's LabelSmoother.__call__, verbatim in its arithmetic.
const char* kPython = R"(
import json, sys, torch
def smoother(logits, labels, eps, shift, n=None):
    if shift:
        logits = logits[..., :-1, :].contiguous(); labels = labels[..., 1:].contiguous()
    log_probs = -torch.nn.functional.log_softmax(logits, dim=-1)
    if labels.dim() == log_probs.dim() - 1:
        labels = labels.unsqueeze(-1)
    padding_mask = labels.eq(-100)
    labels = torch.clamp(labels, min=0)
    nll = log_probs.gather(dim=-1, index=labels)
    smoothed = log_probs.sum(dim=-1, keepdim=True, dtype=torch.float32)
    nll.masked_fill_(padding_mask, 0.0); smoothed.masked_fill_(padding_mask, 0.0)
    d = padding_mask.numel() - padding_mask.long().sum() if n is None else n
    return ((1 - eps) * nll.sum() / d + eps * smoothed.sum() / (d * log_probs.shape[-1])).item()
def inputs(shape, V):
    n = 1
    for s in shape: n *= s
    logits = (torch.arange(n, dtype=torch.float64) * 0.37).sin().mul(3).float().reshape(shape)
    k = torch.arange(n // shape[-1])
    labels = torch.where(k % 5 == 4, torch.full_like(k, -100), (k * 7) % V).reshape(shape[:-1])
    return logits, labels
out = {}
l, y = inputs([2, 6, 11], 11)
out["causal"] = smoother(l, y, 0.1, True)
out["causal_n"] = smoother(l, y, 0.2, True, 13.0)
out["token"] = smoother(l, y, 0.1, False)
l, y = inputs([5, 3], 3)
out["sequence"] = smoother(l, y, 0.3, False)
print(json.dumps(out))
)";

}  // namespace

TEST_CASE("label smoothing equals transformers' LabelSmoother, shifted for causal LMs", "[unit][python]") {
  hftrain::test::python_torch_available();
  TempDir dir("label-smoothing");
  auto py = hftrain::test::run_python(dir.str(), kPython);
  INFO(py.output);
  REQUIRE(py.exit_code == 0);
  const json want = json::parse(py.output);
  const at::Tensor lm = make_logits({2, 6, 11}), lm_labels = make_labels({2, 6}, 11);
  const at::Tensor cls = make_logits({5, 3}), cls_labels = make_labels({5}, 3);
  auto near = [](const at::Tensor& got, double ref) {
    return std::abs(got.item<double>() - ref) <= 1e-6 * std::max(1.0, std::abs(ref));
  };
  CHECK(near(hftrain::label_smoothed_loss(lm, lm_labels, 0.1, true, std::nullopt), want["causal"]));
  CHECK(near(hftrain::label_smoothed_loss(lm, lm_labels, 0.2, true, 13.0), want["causal_n"]));
  CHECK(near(hftrain::label_smoothed_loss(lm, lm_labels, 0.1, false, std::nullopt), want["token"]));
  CHECK(near(hftrain::label_smoothed_loss(cls, cls_labels, 0.3, false, std::nullopt), want["sequence"]));
  // epsilon 0 is the models' own loss.
  CHECK(near(hftrain::label_smoothed_loss(lm, lm_labels, 0.0, true, std::nullopt),
             hftrain::causal_lm_loss(lm, lm_labels, std::nullopt).item<double>()));
}

TEST_CASE("NEFTune's noise is uniform within alpha / sqrt(T * d)", "[unit]") {
  at::manual_seed(0);
  const at::Tensor e = at::zeros({4, 16, 32});
  const at::Tensor noise = hftrain::neftune_noise(e, 5.0);
  const double bound = 5.0 / std::sqrt(16.0 * 32.0);
  CHECK(noise.abs().max().item<double>() <= bound);
  CHECK(noise.abs().max().item<double>() > 0.95 * bound);
  // A uniform's standard deviation is its half-width / sqrt(3).
  CHECK(std::abs(noise.std().item<double>() - bound / std::sqrt(3.0)) < 0.03 * bound);
  CHECK(std::abs(noise.mean().item<double>()) < 0.02 * bound);
}
