// On a CUDA GPU: bf16 and fp16 training of the test model track float32, the loss scaler's
// fused path backs off and skips on a real overflow, and a GPU run's checkpoint resumes with
// its GPU RNG state. Without CUDA each test prints "hftrain-skip:" and returns, which CTest
// reports as skipped (SKIP_REGULAR_EXPRESSION), not passed.
#include "cli/cli_util.h"
#include "hftrain/core/device.h"
#include "hftrain/optim/sgd.h"
#include "hftrain/train/grad_scaler.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

using namespace hftrain::test;
using json = nlohmann::json;

namespace {

bool skip_without_cuda() {
  if (hftrain::cuda_available()) return false;
  std::printf("hftrain-skip: no CUDA device (%s)\n", hftrain::cpu_reason(false).c_str());
  return true;
}

}  // namespace

TEST_CASE("on the GPU, bf16 and fp16 autocast train within 3% of float32's eval losses", "[gpu]") {
  if (skip_without_cuda()) return;
  TempDir dir("gpu-precision");
  const std::string cfg = write_config(dir);
  auto train = [&](const std::string& name, const std::string& extra) {
    Result r = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/" + name + extra);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return logged(dir.str() + "/" + name + "/log.jsonl", "eval_loss");
  };
  const auto fp32 = train("fp32", "");
  REQUIRE(fp32.size() >= 2);
  for (const char* precision : {"bf16", "fp16"}) {
    const auto low = train(precision, std::string(" --") + precision + " true");
    REQUIRE(low.size() == fp32.size());
    for (size_t i = 0; i < fp32.size(); ++i) {
      INFO(precision << " eval " << i << ": float32 " << fp32[i] << ", " << precision << " " << low[i]);
      CHECK(std::abs(low[i] - fp32[i]) <= 0.03 * fp32[i]);
    }
    // Master weights stay float32.
    CHECK(file_bytes(dir.str() + "/" + precision + "/model.safetensors").find("\"F32\"") != std::string::npos);
  }
  // fp16 checkpoints carry the scaler's state, with torch's GradScaler keys.
  const std::string scaler = file_bytes(dir.str() + "/fp16/checkpoint-6/scaler.pt");
  for (const char* key : {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"})
    CHECK(scaler.find(key) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.str() + "/bf16/checkpoint-6/scaler.pt"));
}

TEST_CASE("on the GPU, an fp16 overflow makes the fused unscale skip the step and halve the scale", "[gpu]") {
  if (skip_without_cuda()) return;
  const auto cuda = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  at::Tensor p = at::tensor({1.0f, 2.0f, 3.0f}).to(cuda).requires_grad_(true);
  hftrain::SGD opt{{hftrain::ParamGroup{{p}, 0.5, 0.0}}, {}};
  hftrain::GradScaler scaler;
  // A real fp16 overflow: 60000 * 2 does not fit in half precision.
  at::Tensor loss = (p.to(at::kHalf) * at::full({3}, 60000.0, cuda.dtype(at::kHalf))).sum();
  scaler.scale(loss.to(at::kFloat)).backward();
  const at::Tensor before = p.detach().clone();
  CHECK_FALSE(scaler.step(opt));
  scaler.update();
  CHECK(at::equal(p.detach(), before));
  CHECK(scaler.get_scale() == 32768.0);
  opt.zero_grad();
  // A finite step afterwards is taken on the unscaled gradient.
  scaler.scale((p * at::tensor({1.0f, -2.0f, 0.25f}).to(cuda)).sum()).backward();
  CHECK(scaler.step(opt));
  scaler.update();
  CHECK(at::allclose(p.detach().cpu(), at::tensor({0.5f, 3.0f, 2.875f})));
}

TEST_CASE("on the GPU, a checkpoint resumes as the uninterrupted run, GPU dropout RNG included", "[gpu]") {
  if (skip_without_cuda()) return;
  TempDir dir("gpu-resume");
  const std::string cfg = write_config(dir);  // dropout 0.1: the masks come from the GPU's generator
  Result full = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/full");
  INFO(full.output);
  REQUIRE(full.exit_code == 0);
  std::filesystem::create_directories(dir.str() + "/resumed");
  std::filesystem::copy(dir.str() + "/full/checkpoint-6", dir.str() + "/resumed/checkpoint-6",
                        std::filesystem::copy_options::recursive);
  // HF's single-process file: "cuda" holds every visible GPU's generator state.
  CHECK(file_bytes(dir.str() + "/full/checkpoint-6/rng_state.pth").find("cuda") != std::string::npos);
  Result resumed = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/resumed --set resume_from_checkpoint=true");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  auto a = logged(dir.str() + "/full/log.jsonl", "loss");
  auto b = logged(dir.str() + "/resumed/log.jsonl", "loss");
  a.erase(a.begin(), a.begin() + 6);
  REQUIRE(a.size() == b.size());
  // GPU kernels that accumulate with atomics (the embedding's backward) may round differently
  // from run to run, so equal to 4 decimals rather than bit for bit; other dropout masks would
  // move the loss by far more.
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i + 7 << ": " << a[i] << " vs " << b[i]);
    CHECK(std::abs(a[i] - b[i]) <= 2e-4 * std::abs(a[i]) + 1e-4);
  }
}
