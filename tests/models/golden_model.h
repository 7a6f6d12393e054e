// Checks of a model against golden/models/<case>/: transformers' logits, loss, saved
// gradients and every parameter's gradient norm for the same weights and batch.
#pragma once

#include "hftrain/io/safetensors.h"
#include "hftrain/models/model.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <string>
#include <vector>

namespace hftrain::test {

// inputs.json rows -> (B,T) int64
inline at::Tensor golden_rows(const nlohmann::json& j) {
  std::vector<int64_t> flat;
  for (const auto& row : j)
    for (const auto& v : row) flat.push_back(v.get<int64_t>());
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(j.size()), -1});
}

// dir: "models/<case>/"
inline Batch golden_batch(const std::string& dir) {
  nlohmann::json in = read_json(golden(dir + "inputs.json"));
  return {{"input_ids", golden_rows(in.at("input_ids"))},
          {"attention_mask", golden_rows(in.at("attention_mask"))},
          {"labels", golden_rows(in.at("labels"))}};
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Copies dir/model.safetensors into the model's parameters by name.
inline void load_golden_weights(Model& model, const std::string& dir) {
  auto file = io::safetensors_load(golden(dir + "model.safetensors"));
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) item.value().copy_(file.tensors.at(item.key()));
}

// Forward and backward on the golden batch, checked with the README's tolerances.
inline void check_against_golden(Model& model, const std::string& dir) {
  model.train();  // every dropout of the golden configs is 0
  nlohmann::json expected = read_json(golden(dir + "expected.json"));
  auto tensors = io::safetensors_load(golden(dir + "expected.safetensors")).tensors;
  ModelOutput out = model.forward(golden_batch(dir), std::nullopt);
  REQUIRE(out.logits.sizes().vec() == expected.at("logits_shape").get<std::vector<int64_t>>());
  CHECK(out.logits.scalar_type() == at::kFloat);
  CHECK(max_abs_diff(out.logits, tensors.at("logits")) < 1e-4);
  CHECK(std::abs(out.loss.item<double>() - expected.at("loss").get<double>()) < 1e-4);

  out.loss.backward();
  for (const auto& key : expected.at("grads_saved")) {
    const std::string name = key.get<std::string>().substr(std::string("grad.").size());
    INFO(name);
    const at::Tensor& ref = tensors.at(key.get<std::string>());
    const at::Tensor grad = model.named_parameters()[name].grad();
    REQUIRE(grad.defined());
    CHECK(max_abs_diff(grad, ref) <= 1e-4 * ref.to(at::kDouble).norm().item<double>());
  }
  const nlohmann::json& norms = expected.at("grad_l2_norms");
  CHECK(norms.size() == model.named_parameters().size());
  for (const auto& item : model.named_parameters()) {
    INFO(item.key());
    REQUIRE(norms.contains(item.key()));
    REQUIRE(item.value().grad().defined());
    const double ref = norms.at(item.key()).get<double>();
    const double got = item.value().grad().to(at::kDouble).norm().item<double>();
    if (ref < 1e-6) CHECK(std::abs(got - ref) <= 1e-9);
    else CHECK(std::abs(got - ref) / ref <= 1e-4);
  }
}

}  // namespace hftrain::test
