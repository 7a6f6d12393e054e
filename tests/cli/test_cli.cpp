// End to end through the hftrain binary: train, checkpoint, resume, evaluate, bad input.
#include "hftrain/io/safetensors.h"
#include "cli/cli_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

using hftrain::test::read_json;
using hftrain::test::TempDir;
using json = nlohmann::json;
namespace fs = std::filesystem;

using namespace hftrain::test;


TEST_CASE("resume from a mid-epoch checkpoint reproduces the uninterrupted run bit for bit", "[integration]") {
  TempDir full("full"), part("part");
  Result a = run("train --config " + write_config(full));
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const std::string out_a = full.str() + "/out";
  REQUIRE(fs::is_directory(out_a + "/checkpoint-6"));
  REQUIRE(fs::is_directory(out_a + "/checkpoint-16"));

  // Continue from step 6 (mid-epoch 0, in the middle of the data order) in another directory.
  fs::create_directories(part.str() + "/out");
  fs::copy(out_a + "/checkpoint-6", part.str() + "/out/checkpoint-6", fs::copy_options::recursive);
  Result b = run("resume --checkpoint " + part.str() + "/out/checkpoint-6 --set output_dir=" + part.str() + "/out");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);

  std::vector<json> la = read_log(out_a + "/log.jsonl"), lb = read_log(part.str() + "/out/log.jsonl");
  std::map<int64_t, json> train_a, train_b, eval_a, eval_b;
  for (const json& e : la) {
    if (e.contains("loss")) train_a[e["step"]] = e;
    if (e.contains("eval_loss")) eval_a[e["step"]] = e;
  }
  for (const json& e : lb) {
    if (e.contains("loss")) train_b[e["step"]] = e;
    if (e.contains("eval_loss")) eval_b[e["step"]] = e;
  }
  int compared = 0;
  for (int64_t step = 7; step <= 16; ++step) {
    INFO("step " << step);
    REQUIRE(train_b.count(step));
    CHECK(train_b[step]["loss"] == train_a[step]["loss"]);
    CHECK(train_b[step]["grad_norm"].get<double>() == train_a[step]["grad_norm"].get<double>());
    CHECK(train_b[step]["learning_rate"].get<double>() == train_a[step]["learning_rate"].get<double>());
    ++compared;
  }
  CHECK(compared == 10);
  CHECK(eval_b.at(12)["eval_loss"].get<double>() == eval_a.at(12)["eval_loss"].get<double>());
  // The final weights are the same bytes.
  CHECK(file_bytes(part.str() + "/out/model.safetensors") == file_bytes(out_a + "/model.safetensors"));
  // The loss fell.
  CHECK(train_a[16]["loss"].get<double>() < train_a[1]["loss"].get<double>());
}

TEST_CASE("a checkpoint laid out as the Python Trainer writes it resumes with --config and continues exactly",
          "[integration][python]") {
  if (!python_torch_available()) return;
  TempDir dir("hf-resume");
  const std::string cfg = write_config(dir);
  Result a = run("train --config " + cfg);
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const std::string out_a = dir.str() + "/out", hf = dir.str() + "/hf/checkpoint-6";
  // What transformers' Trainer._save_checkpoint leaves, made with torch alone from checkpoint-6:
  // the optimizer and schedule saved by torch's own AdamW and LambdaLR, an rng_state.pth with
  // Python's and NumPy's states beside torch's, HF's trainer_state.json, a pickled
  // training_args.bin, and none of hftrain's own files.
  auto py = run_python(dir.str(), R"PY(
import functools, os, random, shutil, sys
import numpy as np
import torch
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for f in ("model.safetensors", "config.json", "trainer_state.json"):
    shutil.copy(os.path.join(src, f), dst)
sd = torch.load(os.path.join(src, "optimizer.pt"))
groups = [dict({k: v for k, v in g.items() if k != "params"},
               params=[torch.zeros(sd["state"][i]["exp_avg"].shape, requires_grad=True) for i in g["params"]])
          for g in sd["param_groups"]]
opt = torch.optim.AdamW(groups)
opt.load_state_dict(sd)
torch.save(opt.state_dict(), os.path.join(dst, "optimizer.pt"))
sched = torch.optim.lr_scheduler.LambdaLR(opt, [functools.partial(max, 0.0)] * len(groups))
sched.load_state_dict(torch.load(os.path.join(src, "scheduler.pt")))
torch.save(sched.state_dict(), os.path.join(dst, "scheduler.pt"))
random.seed(123); random.random(); np.random.seed(123); np.random.rand()
torch.save({"python": random.getstate(), "numpy": np.random.get_state(),
            "cpu": torch.load(os.path.join(src, "rng_state.pth"))["cpu"],
            "cuda": [torch.zeros(16, dtype=torch.uint8)]}, os.path.join(dst, "rng_state.pth"))
class TrainingArguments:
    pass
torch.save(TrainingArguments(), os.path.join(dst, "training_args.bin"))
)PY",
                       "'" + out_a + "/checkpoint-6' '" + hf + "'");
  INFO(py.output);
  REQUIRE(py.exit_code == 0);

  // Without the run's config there is nothing to take the data and arguments from.
  Result refused = run("resume --checkpoint " + hf + " --set output_dir=" + dir.str() + "/refused 2>&1");
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.output, Catch::Contains("has no hftrain_config.json") && Catch::Contains("--config"));
  CHECK_FALSE(fs::exists(dir.str() + "/refused"));

  Result b = run("resume --checkpoint " + hf + " --config " + cfg + " --set output_dir=" + dir.str() + "/b 2>&1");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  CHECK_THAT(b.output, Catch::Contains("training_args.bin (a Python pickle) is not read"));
  Result c = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/c --set resume_from_checkpoint=" + hf);
  INFO(c.output);
  REQUIRE(c.exit_code == 0);
  std::vector<double> want = logged(out_a + "/log.jsonl", "loss");
  want.erase(want.begin(), want.begin() + 6);  // steps 7..16
  CHECK(logged(dir.str() + "/b/log.jsonl", "loss") == want);
  CHECK(logged(dir.str() + "/c/log.jsonl", "loss") == want);
  CHECK(file_bytes(dir.str() + "/b/model.safetensors") == file_bytes(out_a + "/model.safetensors"));
  CHECK(file_bytes(dir.str() + "/c/model.safetensors") == file_bytes(out_a + "/model.safetensors"));

  // A state file that does not load is one line, exit 2, and no output_dir left behind.
  fs::copy(hf, dir.str() + "/broken", fs::copy_options::recursive);
  write_bytes(dir.str() + "/broken/rng_state.pth", "not a zip archive");
  Result broken = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/d --set resume_from_checkpoint=" +
                      dir.str() + "/broken 2>&1");
  CHECK(broken.exit_code == 2);
  CHECK_THAT(broken.output, Catch::Contains("broken/rng_state.pth: not a torch pickle"));
  CHECK_FALSE(fs::exists(dir.str() + "/d"));
}

TEST_CASE("log.jsonl: a fresh run over an old output_dir starts it anew, a resume keeps it up to the checkpoint",
          "[integration]") {
  TempDir dir("log-fresh");
  const std::string cfg = write_config(dir, "overwrite_output_dir: true\n"), log = dir.str() + "/out/log.jsonl";
  REQUIRE(run("train --config " + cfg).exit_code == 0);
  const std::vector<double> first = logged(log, "loss"), evals = logged(log, "eval_loss");
  REQUIRE(first.size() == 16);
  REQUIRE(evals.size() == 2);  // steps 6 and 12
  REQUIRE(run("train --config " + cfg).exit_code == 0);
  CHECK(logged(log, "loss") == first);
  // Resumed in place from step 6: steps 1-6 from before, 7-16 from the resumed run, once each.
  Result r = run("train --config " + cfg + " --set resume_from_checkpoint=" + dir.str() + "/out/checkpoint-6");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(logged(log, "loss") == first);
  CHECK(logged(log, "eval_loss") == evals);
}

TEST_CASE("a run clears what killed saves and rotations left, and puts back a re-save's old copy",
          "[integration]") {
  TempDir dir("leftovers");
  const std::string cfg = write_config(dir), out = dir.str() + "/out";
  REQUIRE(run("train --config " + cfg).exit_code == 0);
  // A save killed before its rename, a rotation killed while deleting, and a re-save killed
  // between moving checkpoint-12 aside and putting the new one in its place.
  fs::create_directories(out + "/.tmp-checkpoint-99.4242");
  std::ofstream(out + "/.tmp-checkpoint-99.4242/model.safetensors") << "partial";
  fs::rename(out + "/checkpoint-6", out + "/.deleting-checkpoint-6.77");
  fs::rename(out + "/checkpoint-12", out + "/.old-checkpoint-12.55");
  Result r = run("train --config " + cfg + " --set resume_from_checkpoint=" + out + "/checkpoint-16 --set max_steps=18");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_FALSE(fs::exists(out + "/.tmp-checkpoint-99.4242"));
  CHECK_FALSE(fs::exists(out + "/.deleting-checkpoint-6.77"));
  CHECK_FALSE(fs::exists(out + "/.old-checkpoint-12.55"));
  REQUIRE(fs::exists(out + "/checkpoint-12/trainer_state.json"));
  CHECK(read_json(out + "/checkpoint-12/trainer_state.json")["global_step"] == 12);
  CHECK(fs::exists(out + "/checkpoint-18"));
}

TEST_CASE("Python's torch.load opens optimizer.pt, scheduler.pt and rng_state.pth", "[integration][python]") {
  TempDir dir("py");
  Result a = run("train --config " + write_config(dir, "save_total_limit: 1\n"));
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  // Rotation kept only the newest of checkpoint-6, -12, -16.
  CHECK(!fs::exists(dir.str() + "/out/checkpoint-6"));
  CHECK(!fs::exists(dir.str() + "/out/checkpoint-12"));
  Result py = hftrain::test::run_command(std::string(HFTRAIN_PYTHON) + " " + HFTRAIN_SOURCE_DIR +
                                         "/tests/cli/check_checkpoint.py " + dir.str() + "/out/checkpoint-16 16");
  INFO(py.output);
  CHECK(py.exit_code == 0);
}

TEST_CASE("trainer_state.json has HF's TrainerState keys and log_history shapes", "[integration]") {
  TempDir dir("state");
  REQUIRE(run("train --config " + write_config(dir)).exit_code == 0);
  const std::string text = file_bytes(dir.str() + "/out/checkpoint-16/trainer_state.json");
  json s = json::parse(text);
  std::vector<std::string> keys;
  for (const auto& [k, _] : s.items()) keys.push_back(k);
  // Exactly the keys of transformers 4.48's TrainerState: HF resumes with TrainerState(**json),
  // so one more key (4.50's best_global_step) stops it.
  json hf = read_json(hftrain::test::golden("trainer/final_state.json"));
  std::vector<std::string> expected;
  const json hf_keys = read_json(hftrain::test::golden("trainer/trainer_state_checkpoint-20.json"));
  for (const auto& [k, _] : hf_keys.items()) expected.push_back(k);
  std::sort(expected.begin(), expected.end());
  CHECK(keys == expected);
  CHECK(text.substr(0, 4) == "{\n  ");  // indent 2, sorted keys
  CHECK(s["global_step"] == 16);
  CHECK(s["stateful_callbacks"]["TrainerControl"]["args"]["should_training_stop"] == true);
  // Each log entry has the keys of its HF counterpart (plus eval_perplexity).
  std::set<std::string> train_keys, eval_keys;
  for (const auto& [k, _] : hf["log_history"][0].items()) train_keys.insert(k);
  for (const json& e : hf["log_history"])
    if (e.contains("eval_loss"))
      for (const auto& [k, _] : e.items()) eval_keys.insert(k);
  eval_keys.insert("eval_perplexity");
  for (const json& e : s["log_history"]) {
    std::set<std::string> got;
    for (const auto& [k, _] : e.items()) got.insert(k);
    CHECK((got == train_keys || got == eval_keys));
  }
  // The final summary closes log.jsonl with HF's train metrics.
  json last = read_log(dir.str() + "/out/log.jsonl").back();
  for (const char* k : {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                        "train_loss", "epoch", "step"})
    CHECK(last.contains(k));
  // total_flos = 6 x non-embedding parameters x input tokens (HF's floating_point_ops).
  // Per layer: ln_1 64 + c_attn 3168 + attn.c_proj 1056 + ln_2 64 + c_fc 4224 + mlp.c_proj 4128,
  // two layers plus ln_f: 25472. Epoch 0 is 89 windows in 12 steps, epoch 1 four steps of 8.
  CHECK(last["total_flos"].get<double>() == 6.0 * 25472 * 32 * (89 + 4 * 8));
}

TEST_CASE("hftrain evaluate on a checkpoint writes eval metrics", "[integration]") {
  TempDir dir("eval");
  REQUIRE(run("train --config " + write_config(dir)).exit_code == 0);
  Result r = run("evaluate --checkpoint " + dir.str() + "/out/checkpoint-12");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json m = read_json(dir.str() + "/out/checkpoint-12/eval_results.json");
  for (const char* k : {"eval_loss", "eval_perplexity", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})
    CHECK(m.contains(k));
  // The same weights and data give the eval_loss that training logged at step 12.
  double logged = -1;
  for (const json& e : read_log(dir.str() + "/out/log.jsonl"))
    if (e.contains("eval_loss") && e["step"] == 12) logged = e["eval_loss"];
  CHECK(m["eval_loss"].get<double>() == logged);
}

TEST_CASE("bad input: one line, exit code 2, nothing written to output_dir", "[integration]") {
  TempDir dir("bad");
  const std::string out = dir.str() + "/out";
  struct Case {
    std::string what, extra_args, expect;
  };
  std::vector<Case> cases = {
      {"unknown key", "--set learning_rat=1", "did you mean \"learning_rate\""},
      {"wrong type", "--set per_device_train_batch_size=big", "must be an integer"},
      {"negative learning rate", "--set learning_rate=-1", "learning_rate must be >= 0"},
      {"missing data file", "--set data.train.format=text --set data.train.path=/nonexistent.txt",
       "data file not found: /nonexistent.txt"},
      {"missing config", "--config /nonexistent.yaml", "config file not found"},
      {"model config typo", "--set model.config.n_layers=4", "did you mean \"n_layer\""},
      {"block longer than the model", "--set data.block_size=64", "exceeds the model's n_positions 32"},
      {"drop_last with fewer windows than a batch",
       "--set dataloader_drop_last=true --set per_device_train_batch_size=100", "fewer than one batch of 100"},
  };
  std::string config = write_config(dir);
  for (const Case& c : cases) {
    INFO(c.what);
    std::string args = c.extra_args.rfind("--config", 0) == 0 ? c.extra_args : "--config " + config + " " + c.extra_args;
    Result r = run("train " + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Catch::Contains(c.expect));
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
    CHECK(!fs::exists(out));
  }
  // An output_dir that cannot be written: here a regular file stands where it should be.
  std::ofstream(out) << "keep me";
  Result r = run("train --config " + config);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("is not a directory"));
  CHECK(file_bytes(out) == "keep me");
}

TEST_CASE("a fresh run refuses an output_dir holding checkpoints instead of mixing runs", "[integration]") {
  TempDir dir("mix");
  std::string config = write_config(dir, "save_strategy: steps\n");
  REQUIRE(run("train --config " + config + " --set max_steps=6").exit_code == 0);
  std::string before = file_bytes(dir.str() + "/out/checkpoint-6/model.safetensors");
  Result r = run("train --config " + config);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("already holds checkpoint-6"));
  CHECK(file_bytes(dir.str() + "/out/checkpoint-6/model.safetensors") == before);
}

TEST_CASE("hftrain --version and --help exit 0, an unknown command exits 2", "[integration]") {
  CHECK(run("--version").exit_code == 0);
  CHECK(run("--help").exit_code == 0);
  CHECK(run("trian").exit_code == 2);
}

TEST_CASE("hftrain env names the OpenBLAS kernels Python's torch gets, and a pinned OPENBLAS_CORETYPE",
          "[integration][python]") {
  // Python's torch loads the same OpenBLAS: its own report of the kernel set is the reference.
  const std::string ask = std::string(HFTRAIN_PYTHON) +
                          " -c \"import ctypes, torch; f = ctypes.CDLL('libopenblas.so.0').openblas_get_corename; "
                          "f.restype = ctypes.c_char_p; print(f().decode())\"";
  Result py = run_command("env -u OPENBLAS_CORETYPE " + ask);
  INFO(py.output);
  REQUIRE(py.exit_code == 0);
  std::string kernels = py.output;
  kernels.erase(kernels.find_last_not_of(" \n") + 1);
  kernels = kernels.substr(kernels.find_last_of('\n') + 1);  // its last line
  Result own = run_command("env -u OPENBLAS_CORETYPE " + std::string(HFTRAIN_BIN) + " env");
  INFO(own.output);
  REQUIRE(own.exit_code == 0);
  CHECK_THAT(own.output, Catch::Contains("- BLAS: OpenBLAS, " + kernels + " kernels\n"));
  CHECK_THAT(own.output, Catch::Contains("- LibTorch version: "));

  Result pinned = run_command("OPENBLAS_CORETYPE=Haswell " + std::string(HFTRAIN_BIN) + " env");
  INFO(pinned.output);
  CHECK_THAT(pinned.output, Catch::Contains("- BLAS: OpenBLAS, Haswell kernels (OPENBLAS_CORETYPE=Haswell)"));
}
