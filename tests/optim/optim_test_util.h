// Helpers for the optimizer tests: golden/optimizers.json values as tensors, and its tolerance.
#pragma once

#include <ATen/Functions.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace hftrain::test {

// A 1-D or 2-D float32 tensor from a JSON list (of lists).
inline at::Tensor tensor_of(const nlohmann::json& j) {
  std::vector<float> flat;
  std::vector<int64_t> shape;
  if (j[0].is_array()) {
    shape = {static_cast<int64_t>(j.size()), static_cast<int64_t>(j[0].size())};
    for (const auto& row : j)
      for (const auto& v : row) flat.push_back(v.get<float>());
  } else {
    shape = {static_cast<int64_t>(j.size())};
    for (const auto& v : j) flat.push_back(v.get<float>());
  }
  return at::from_blob(flat.data(), shape, at::kFloat).clone();
}

// |delta| <= 2e-6 + 1e-6 |ref| per element (golden README); returns max |delta|.
inline double require_close(const at::Tensor& got, const at::Tensor& ref, const std::string& what) {
  const double max_delta = got.sub(ref).abs().max().item<double>();
  at::Tensor excess = got.sub(ref).abs().sub(ref.abs().mul(1e-6).add(2e-6));
  INFO(what << ": max |delta| = " << max_delta);
  REQUIRE(excess.max().item<double>() <= 0);
  return max_delta;
}

}  // namespace hftrain::test
