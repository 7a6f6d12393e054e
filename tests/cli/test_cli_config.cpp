// TrainingArguments through the command line: HF's refusals exit 2 with one line, old
// spellings warn once, HfArgumentParser-style options, and `hftrain config`'s origins.
#include "cli/cli_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>

using namespace hftrain::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// --set key=<JSON value>, single-quoted for the shell (YAML reads JSON scalars).
std::string sets(const json& args) {
  std::string out;
  for (const auto& [k, v] : args.items()) out += " --set '" + k + "=" + v.dump() + "'";
  return out;
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("each combination HF refuses exits 2 with one line and writes nothing", "[integration][config]") {
  TempDir dir("refuse");
  const std::string config = write_config(dir);
  json rows = read_json(golden("training_args/invalid_examples.json"));
  for (const json& row : rows) {
    INFO(row["what"].get<std::string>());
    Result r = run("train --config " + config + sets(row["args"]));
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK(lines(r.output) == 1);
    CHECK_THAT(r.output, Catch::StartsWith("hftrain: error: "));
  }
  CHECK(!fs::exists(dir.str() + "/out"));
}

TEST_CASE("an old spelling works and prints one deprecation line", "[integration][config]") {
  TempDir dir("oldname");
  Result r = run("config --config " + write_config(dir) + " --set evaluation_strategy=epoch --set eval_strategy=null");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') > 100);
  size_t first = r.output.find("evaluation_strategy is deprecated, use eval_strategy");
  REQUIRE(first != std::string::npos);
  CHECK(r.output.find("deprecated", first + std::strlen("evaluation_strategy is deprecated")) == std::string::npos);
  CHECK_THAT(r.output, Catch::Contains("\neval_strategy: epoch"));
}

TEST_CASE("HfArgumentParser-style options override the file, and config marks where values came from",
          "[integration][config]") {
  TempDir dir("hfstyle");
  Result r = run("config --config " + write_config(dir) + " --learning_rate 3e-4 --do_train --seed=7");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("learning_rate: 0.0003  # --set learning_rate"));
  CHECK_THAT(r.output, Catch::Contains("do_train: true  # --set do_train"));
  CHECK_THAT(r.output, Catch::Contains("seed: 7  # --set seed"));
  CHECK_THAT(r.output, Catch::Contains("per_device_train_batch_size: 4  # " + dir.str() + "/run.yaml:3"));
  CHECK_THAT(r.output, Catch::Contains("\nadam_beta1: 0.9\n"));  // a default: no mark
  CHECK(run("config --learning_rate").exit_code == 2);  // "true" is not a number
}

TEST_CASE("logging_steps below 1 is a ratio of max_steps in a real run", "[integration][config]") {
  TempDir dir("ratio");
  Result r = run("train --config " + write_config(dir) + " --set logging_steps=0.25 --set eval_strategy=no");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::vector<int64_t> logged;
  for (const json& e : read_log(dir.str() + "/out/log.jsonl"))
    if (e.contains("loss")) logged.push_back(e["step"]);
  CHECK(logged == std::vector<int64_t>{4, 8, 12, 16});  // ceil(16 * 0.25) = 4
}

TEST_CASE("load_best_model_at_end keeps the best checkpoint through rotation and ends with its weights",
          "[integration][config]") {
  TempDir dir("best");
  // A learning rate that makes the loss rise after the first evaluations.
  Result r = run("train --config " + write_config(dir) +
                 " --set load_best_model_at_end=true --set save_total_limit=1 --set eval_steps=4 --set save_steps=4"
                 " --set learning_rate=0.3 --set warmup_steps=0 --set eval_on_start=true");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json state = read_json(dir.str() + "/out/trainer_state.json");
  std::vector<json> evals;
  for (const json& e : read_log(dir.str() + "/out/log.jsonl"))
    if (e.contains("eval_loss")) evals.push_back(e);
  REQUIRE(evals.size() == 5);  // on start, then steps 4, 8, 12, 16
  CHECK(evals[0]["step"] == 0);
  json best = evals[1];
  for (size_t i = 2; i < evals.size(); ++i)
    if (evals[i]["eval_loss"].get<double>() < best["eval_loss"].get<double>()) best = evals[i];
  CHECK(state["best_metric"].get<double>() == best["eval_loss"].get<double>());
  const std::string best_dir = dir.str() + "/out/checkpoint-" + std::to_string(best["step"].get<int64_t>());
  CHECK(state["best_model_checkpoint"] == best_dir);
  CHECK(fs::exists(best_dir));
  CHECK(fs::exists(dir.str() + "/out/checkpoint-16"));
  // The exported model is the best checkpoint's.
  CHECK(file_bytes(dir.str() + "/out/model.safetensors") == file_bytes(best_dir + "/model.safetensors"));
}

TEST_CASE("hostile YAML: a self-referring alias, an alias bomb, a map as key and out-of-range numbers exit 2",
          "[integration][config]") {
  TempDir dir("yaml-hostile");
  auto refuse = [&](const std::string& name, const std::string& yaml, const std::string& phrase) {
    const std::string path = dir.str() + "/" + name + ".yaml";
    std::ofstream(path) << "output_dir: " << dir.str() << "/out\n" << yaml;
    Result r = run("train --config " + path + " 2>&1");
    INFO(name << ": " << r.output);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Catch::Contains(phrase));
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') <= 2);
    CHECK_FALSE(fs::exists(dir.str() + "/out"));
  };
  refuse("loop", "x: &a [*a]\n", "loop.yaml:2: the YAML nests deeper than 64 levels");
  // Nine levels of ten aliases each: 10^9 values from a few hundred bytes.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += std::string(k ? ", " : "") + "*a" + std::to_string(i - 1);
    bomb += "]\n";
  }
  refuse("bomb", bomb, "expands to more than 1000000 values");
  refuse("complex_key", "? [a, b]\n: 1\n", "complex_key.yaml:2: a key must be a plain string");
  refuse("huge", "learning_rate: 1e999\n", "huge.yaml:2 (key \"learning_rate\"): the number 1e999 is out of range");
  Result tiny = run("train --set learning_rate=1e-320 --set output_dir=" + dir.str() + "/out 2>&1");
  CHECK(tiny.exit_code == 2);
  CHECK_THAT(tiny.output, Catch::Contains("--set learning_rate: the number 1e-320 is out of range"));
  // A bad value of 100 KB (about the most one argument can carry) is named in one short line.
  Result big = run("train --set 'run_name=[" + std::string(100000, '1') + "]' --set output_dir=" + dir.str() +
                   "/out 2>&1");
  CHECK(big.exit_code == 2);
  CHECK(big.output.size() < 2000);
}

TEST_CASE("a second run into an output_dir in use is refused naming the first run's pid", "[integration]") {
  TempDir dir("lock");
  const std::string cfg = write_config(dir, "overwrite_output_dir: true\n");
  const std::string first = std::string(HFTRAIN_BIN) + " train --config " + cfg +
                            " --set max_steps=100000 --set save_strategy=no --set eval_strategy=no";
  auto r = run_command("bash -c '" + first + " > " + dir.str() + "/first.txt 2>&1 & pid=$!; " +
                       "for i in $(seq 1 100); do grep -q step " + dir.str() + "/first.txt 2>/dev/null && break; " +
                       "sleep 0.1; done; " + std::string(HFTRAIN_BIN) + " train --config " + cfg +
                       "; echo second exited $?; echo first was $pid; kill -9 $pid' 2>&1");
  INFO(r.output);
  CHECK_THAT(r.output, Catch::Contains("second exited 2"));
  CHECK_THAT(r.output, Catch::Contains("is in use by another hftrain run (pid"));
  const std::string pid = r.output.substr(r.output.find("first was ") + 10);
  CHECK_THAT(r.output, Catch::Contains("(pid " + pid.substr(0, pid.find('\n')) + ")"));
}
