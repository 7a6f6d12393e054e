// Mixed precision through the binary on the CPU: bf16 autocast trains close to float32 (but
// not bit for bit, so the matmuls did run in bf16), bf16_full_eval evaluates a bf16 copy of
// the model, and fp16 (CUDA-only) is refused.
#include "cli/cli_util.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace hftrain::test;
using json = nlohmann::json;

TEST_CASE("bf16 autocast trains within 2% of float32's losses, in bf16", "[integration][amp]") {
  TempDir dir("bf16");
  const std::string cfg = write_config(dir) + " --set save_strategy=no";
  Result a = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/fp32");
  Result b = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/bf16 --bf16 true");
  INFO(a.output << b.output);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  for (const char* key : {"loss", "eval_loss"}) {
    const auto fp32 = logged(dir.str() + "/fp32/log.jsonl", key);
    const auto bf16 = logged(dir.str() + "/bf16/log.jsonl", key);
    REQUIRE(fp32.size() == bf16.size());
    REQUIRE(!fp32.empty());
    bool differs = false;
    for (size_t i = 0; i < fp32.size(); ++i) {
      INFO(key << " " << i << ": float32 " << fp32[i] << ", bf16 " << bf16[i]);
      CHECK(std::abs(bf16[i] - fp32[i]) <= 0.02 * fp32[i]);
      differs |= bf16[i] != fp32[i];
    }
    CHECK(differs);  // bf16's 8-bit mantissa shows in 4 decimals
  }
  // The master weights stay float32: the saved model is float32.
  CHECK(file_bytes(dir.str() + "/bf16/model.safetensors").find("\"F32\"") != std::string::npos);
  CHECK(file_bytes(dir.str() + "/bf16/model.safetensors").find("\"BF16\"") == std::string::npos);
}

TEST_CASE("bf16_full_eval evaluates the model cast to bf16, close to float32", "[integration][amp]") {
  TempDir dir("bf16-eval");
  REQUIRE(run("train --config " + write_config(dir) + " --set max_steps=6").exit_code == 0);
  const std::string ckpt = dir.str() + "/out/checkpoint-6";
  Result fp32 = run("evaluate --checkpoint " + ckpt);
  INFO(fp32.output);
  REQUIRE(fp32.exit_code == 0);
  const double loss32 = read_json(ckpt + "/eval_results.json")["eval_loss"];
  Result bf16 = run("evaluate --checkpoint " + ckpt + " --bf16_full_eval true");
  INFO(bf16.output);
  REQUIRE(bf16.exit_code == 0);
  const double loss16 = read_json(ckpt + "/eval_results.json")["eval_loss"];
  CHECK(loss16 != loss32);
  CHECK(std::abs(loss16 - loss32) <= 0.02 * loss32);
}

TEST_CASE("fp16 is refused on the CPU with one line and exit 2", "[integration][amp]") {
  TempDir dir("fp16");
  Result r = run("train --config " + write_config(dir) + " --fp16 true");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("fp16 mixed precision needs a CUDA device"));
  CHECK_FALSE(std::filesystem::exists(dir.str() + "/out"));
}
