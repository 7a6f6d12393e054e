// The faults a long run meets, through the binary: divergence, a resume that changes what it
// cannot, a data file rewritten behind the cache's back, a log that cannot be written.
#include "cli_util.h"
#include "hftrain/train/callback.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace hftrain::test;

TEST_CASE("a diverging run is warned about and stops before saving NaN weights", "[integration][faults]") {
  TempDir dir("diverge");
  const std::string cfg = write_config(dir, "max_grad_norm: 0\n");
  Result r = run("train --config " + cfg + " --set learning_rate=1e6 --set eval_strategy=no --set logging_steps=2 2>&1");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("training has diverged") && Catch::Contains("or set max_grad_norm"));
  CHECK_THAT(r.output, Catch::Contains("the weights are not finite") && Catch::Contains("stopped before saving"));
  CHECK_FALSE(fs::exists(dir.str() + "/out/checkpoint-6"));
  CHECK_FALSE(fs::exists(dir.str() + "/out/model.safetensors"));
  // stop_on_nonfinite: false saves them, as HF does.
  Result saved = run("train --config " + cfg + " --set learning_rate=1e6 --set eval_strategy=no --set stop_on_nonfinite=false "
                     "--set overwrite_output_dir=true 2>&1");
  CHECK(saved.exit_code == 0);
  CHECK(fs::exists(dir.str() + "/out/checkpoint-6/model.safetensors"));
}

TEST_CASE("a resume that changes the accumulation or the model is refused before anything is written",
          "[integration][faults]") {
  TempDir dir("resume-change");
  const std::string cfg = write_config(dir);
  REQUIRE(run("train --config " + cfg + " --set max_steps=6").exit_code == 0);
  const std::string ck = dir.str() + "/out/checkpoint-6";
  Result ga = run("resume --checkpoint " + ck + " --set gradient_accumulation_steps=4 --set output_dir=" + dir.str() +
                  "/b 2>&1");
  CHECK(ga.exit_code == 2);
  CHECK_THAT(ga.output, Catch::Contains("gradient_accumulation_steps 2") && Catch::Contains("has 4"));
  Result heads = run("resume --checkpoint " + ck + " --set model.config.n_head=4 --set output_dir=" + dir.str() +
                     "/b 2>&1");
  CHECK(heads.exit_code == 2);
  CHECK_THAT(heads.output, Catch::Contains("config.json") && Catch::Contains("n_head = 2"));
  Result missing = run("resume --checkpoint " + dir.str() + "/out/checkpoint-7 2>&1");
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.output, Catch::Contains("checkpoint-7 does not exist"));
  CHECK_FALSE(fs::exists(dir.str() + "/b"));
}

TEST_CASE("a data file rewritten with the same size and mtime is tokenized again", "[integration][faults]") {
  TempDir dir("cache-key");
  const std::string text = dir.str() + "/corpus.txt", cache = dir.str() + "/cache";
  auto write_corpus = [&](char c) {
    std::ofstream(text) << std::string(4000, c) << "\n";
    struct timespec times[2] = {{1700000000, 0}, {1700000000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, text.c_str(), times, 0) == 0);
  };
  const std::string cfg = dir.str() + "/run.yaml";
  std::ofstream(cfg) << "output_dir: " << dir.str() << "/out\noverwrite_output_dir: true\nmax_steps: 1\n"
                     << "per_device_train_batch_size: 2\neval_strategy: \"no\"\n"
                     << "model: {type: gpt2, config: {vocab_size: 256, n_positions: 32, n_embd: 16, n_layer: 1, "
                     << "n_head: 2}}\ndata: {block_size: 32, validation_split_percentage: 0, cache_dir: " << cache
                     << ", train: {format: text, path: " << text << "}}\n";
  const std::string cmd = "train --config " + cfg + " 2>&1";
  write_corpus('a');
  CHECK_THAT(run(cmd).output, Catch::Contains("tokenized"));
  CHECK_THAT(run(cmd).output, !Catch::Contains("tokenized"));  // unchanged: from the cache
  write_corpus('b');  // same size, same mtime, other bytes
  CHECK_THAT(run(cmd).output, Catch::Contains("tokenized"));
}

TEST_CASE("a log line that cannot be written is reported and never left half-written", "[unit][faults]") {
  TempDir dir("log-full");
  hftrain::TrainingArguments a;
  a.output_dir = dir.str();
  hftrain::TrainerState s;
  hftrain::TrainerControl c;
  hftrain::LogCallback log;
  fs::create_symlink("/dev/full", dir.str() + "/log.jsonl");  // every write: ENOSPC
  // stderr into a file for the duration, to read the report.
  const std::string err_path = dir.str() + "/stderr.txt";
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(err, STDERR_FILENO);
  CHECK_NOTHROW(log.on_log(a, s, c, nlohmann::json{{"loss", 1.5}, {"step", 1}}));
  CHECK_NOTHROW(log.on_log(a, s, c, nlohmann::json{{"loss", 1.25}, {"step", 2}}));
  log.on_train_end(a, s, c);
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(err);
  ::close(saved);
  std::ifstream in(err_path);
  const std::string report((std::istreambuf_iterator<char>(in)), {});
  CHECK_THAT(report, Catch::Contains("cannot write " + dir.str() + "/log.jsonl") &&
                         Catch::Contains("No space left on device") && Catch::Contains("\"loss\":1.5"));
  CHECK_THAT(report, Catch::Contains("2 log line(s) could not be written"));
}
