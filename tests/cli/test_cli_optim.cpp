// Optimizers and schedules through the binary: each HF name trains, resumes bit for bit, and
// reduce_lr_on_plateau steps on the eval metric as torch's ReduceLROnPlateau does.
#include "cli/cli_util.h"
#include "hftrain/core/torch_compat.h"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace hftrain::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::map<int64_t, json> train_logs(const std::string& path) {
  std::map<int64_t, json> out;
  for (const json& e : read_log(path))
    if (e.contains("loss")) out[e["step"]] = e;
  return out;
}
}  // namespace

TEST_CASE("sgd, adagrad, rmsprop and adafactor train, and resume bit for bit", "[integration][optim]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sgd", " --set optim=sgd --set learning_rate=0.1 --set 'optim_args=momentum=0.9,nesterov=True'"},
      {"adagrad", " --set optim=adagrad --set learning_rate=0.05"},
      {"rmsprop", " --set optim=rmsprop --set learning_rate=0.003 --set 'optim_args=momentum=0.5,centered=True'"},
      {"adafactor", " --set optim=adafactor --set learning_rate=0.01 --set lr_scheduler_type=polynomial"},
  };
  for (const auto& [name, sets] : cases) {
    INFO(name);
    TempDir full("opt-" + name), part("opt-" + name + "-resume");
    Result a = run("train --config " + write_config(full) + sets);
    INFO(a.output);
    REQUIRE(a.exit_code == 0);
    auto la = train_logs(full.str() + "/out/log.jsonl");
    CHECK(la.at(16)["loss"].get<double>() < la.at(1)["loss"].get<double>());
    fs::create_directories(part.str() + "/out");
    fs::copy(full.str() + "/out/checkpoint-6", part.str() + "/out/checkpoint-6", fs::copy_options::recursive);
    Result b = run("resume --checkpoint " + part.str() + "/out/checkpoint-6 --set output_dir=" + part.str() + "/out");
    INFO(b.output);
    REQUIRE(b.exit_code == 0);
    auto lb = train_logs(part.str() + "/out/log.jsonl");
    for (int64_t step = 7; step <= 16; ++step) {
      CHECK(lb.at(step)["grad_norm"].get<double>() == la.at(step)["grad_norm"].get<double>());
      CHECK(lb.at(step)["learning_rate"].get<double>() == la.at(step)["learning_rate"].get<double>());
    }
    CHECK(file_bytes(part.str() + "/out/model.safetensors") == file_bytes(full.str() + "/out/model.safetensors"));
  }
}

TEST_CASE("reduce_lr_on_plateau halves the learning rate after each evaluation that does not improve",
          "[integration][optim]") {
  TempDir dir("plateau");
  Result r = run("train --config " + write_config(dir) +
                 " --set lr_scheduler_type=reduce_lr_on_plateau --set 'lr_scheduler_kwargs={patience: 0, factor: 0.5}'"
                 " --set eval_steps=2 --set learning_rate=0.05 --set warmup_steps=0");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // torch's rule (mode min, threshold 1e-4 rel, patience 0, cooldown 0): a step that does not
  // beat best * (1 - 1e-4) multiplies the lr by 0.5, from the next logged step on.
  double lr = 0.05, best = INFINITY;
  std::map<int64_t, double> expected;
  const std::vector<json> log = read_log(dir.str() + "/out/log.jsonl");
  int reductions = 0;
  for (const json& e : log) {
    if (e.contains("loss")) expected[e["step"]] = lr;
    if (e.contains("eval_loss")) {
      const double v = e["eval_loss"];
      if (v < best * (1 - 1e-4)) best = v;
      else lr *= 0.5, ++reductions;
    }
  }
  CHECK(reductions > 0);
  for (const auto& [step, e] : train_logs(dir.str() + "/out/log.jsonl")) {
    INFO("step " << step);
    CHECK(e["learning_rate"].get<double>() == expected.at(step));
  }
}

TEST_CASE("a setting transformers would ignore runs as HF runs it, with one warning line", "[integration][optim]") {
  TempDir dir("quirk");
  Result r = run("config --config " + write_config(dir) +
                 " --set lr_scheduler_type=inverse_sqrt --set 'lr_scheduler_kwargs={timescale: 5}'");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("hftrain: warning: transformers 4.48 ignores lr_scheduler_kwargs (timescale)"));
  Result bad = run("config --config " + write_config(dir) + " --set lr_scheduler_type=polynomial --set 'lr_scheduler_kwargs={powr: 2}'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("lr_scheduler_kwargs.powr"));
  Result fused = run("config --config " + write_config(dir) + " --set optim=adamw_torch_fused");
  if (hftrain::compat::kHasFusedAdamW) {
    CHECK(fused.exit_code == 0);
  } else {
    CHECK(fused.exit_code == 2);
    CHECK_THAT(fused.output, Catch::Contains("adamw_torch_fused needs LibTorch 2.4 or newer"));
  }
}
