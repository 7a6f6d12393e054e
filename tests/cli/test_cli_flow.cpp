// Training flow through the binary: early stopping and its resumed state, preemption by signal.
#include "cli/cli_util.h"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

using namespace hftrain::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A run whose eval loss stops improving: a large learning rate, evaluation every 2 steps.
const char* kEarlyStop =
    " --set load_best_model_at_end=true --set eval_steps=2 --set save_steps=2 --set learning_rate=0.05"
    " --set warmup_steps=0 --set max_steps=40 --set 'callbacks=[{name: early_stopping,"
    " early_stopping_patience: 2, early_stopping_threshold: 0.001}]'";

std::vector<json> evals_of(const std::string& log) {
  std::vector<json> out;
  for (const json& e : read_log(log))
    if (e.contains("eval_loss")) out.push_back(e);
  return out;
}

// HF's EarlyStoppingCallback rule applied to the logged eval losses: the step it stops at.
int64_t expected_stop(const std::vector<json>& evals, int64_t patience, double threshold) {
  std::optional<double> best;
  int64_t counter = 0;
  for (const json& e : evals) {
    const double v = e["eval_loss"];
    counter = (!best || (v < *best && std::abs(v - *best) > threshold)) ? 0 : counter + 1;
    if (!best || v < *best) best = v;
    if (counter >= patience) return e["step"];
  }
  return -1;
}

}  // namespace

TEST_CASE("early stopping stops where HF's rule says, and its counter survives resume", "[integration][flow]") {
  TempDir full("early"), part("early-resume");
  Result a = run("train --config " + write_config(full) + kEarlyStop);
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const std::string out = full.str() + "/out";
  std::vector<json> evals = evals_of(out + "/log.jsonl");
  const int64_t stop = expected_stop(evals, 2, 0.001);
  REQUIRE(stop > 0);
  REQUIRE(stop < 40);
  json state = read_json(out + "/trainer_state.json");
  CHECK(state["global_step"] == stop);
  CHECK(evals.back()["step"] == stop);

  // Resume from the checkpoint where the counter was 1: the resumed run must stop at the
  // same step, which it does only if the counter came back.
  std::optional<int64_t> from;
  for (const auto& c : fs::directory_iterator(out)) {
    if (c.path().filename().string().rfind("checkpoint-", 0) != 0) continue;
    json s = read_json((c.path() / "trainer_state.json").string());
    if (s["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"] == 1)
      from = s["global_step"].get<int64_t>();
  }
  REQUIRE(from.has_value());
  const std::string ckpt = "checkpoint-" + std::to_string(*from);
  fs::create_directories(part.str() + "/out");
  fs::copy(out + "/" + ckpt, part.str() + "/out/" + ckpt, fs::copy_options::recursive);
  Result b = run("resume --checkpoint " + part.str() + "/out/" + ckpt + " --set output_dir=" + part.str() + "/out");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  CHECK(read_json(part.str() + "/out/trainer_state.json")["global_step"] == stop);
}

TEST_CASE("SIGTERM during training leaves a resumable checkpoint and the resumed losses match", "[integration][flow]") {
  // Slow enough steps (a wider model) that the signal lands mid-run.
  const std::string slower =
      " --set max_steps=40 --set save_steps=1000 --set eval_strategy=no --set model.config.n_embd=96"
      " --set model.config.n_head=4";
  TempDir full("term-full"), part("term");
  REQUIRE(run("train --config " + write_config(full) + slower).exit_code == 0);

  const std::string log = part.str() + "/out/log.jsonl";
  const std::string cmd = std::string(HFTRAIN_BIN) + " train --config " + write_config(part) + slower + " > " +
                          part.str() + "/stdout.txt 2>&1";
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Signal once a few steps are logged.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && (!fs::exists(log) || read_log(log).size() < 5))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO(file_bytes(part.str() + "/stdout.txt"));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 128 + SIGTERM);
  std::vector<json> before = read_log(log);
  const int64_t at = before.back()["step"];
  REQUIRE(at < 40);
  const std::string ckpt = part.str() + "/out/checkpoint-" + std::to_string(at);
  REQUIRE(fs::exists(ckpt + "/optimizer.pt"));

  Result r = run("resume --checkpoint " + ckpt);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::map<int64_t, json> a, b;
  for (const json& e : read_log(full.str() + "/out/log.jsonl"))
    if (e.contains("loss")) a[e["step"]] = e;
  for (const json& e : read_log(log))
    if (e.contains("loss")) b[e["step"]] = e;
  for (int64_t step = at + 1; step <= 40; ++step) {
    INFO("step " << step);
    REQUIRE(b.count(step));
    CHECK(b[step]["grad_norm"].get<double>() == a[step]["grad_norm"].get<double>());
    CHECK(b[step]["loss"] == a[step]["loss"]);
  }
  CHECK(file_bytes(part.str() + "/out/model.safetensors") == file_bytes(full.str() + "/out/model.safetensors"));
}

TEST_CASE("report_to tensorboard writes HF's scalar names, and loss.svg plots the run", "[integration][flow][python]") {
  TempDir dir("tb");
  Result r = run("train --config " + write_config(dir) + " --set report_to=tensorboard");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string runs = dir.str() + "/out/runs";
  std::string events;
  for (const auto& f : fs::directory_iterator(runs))
    if (f.path().filename().string().rfind("events.out.tfevents.", 0) == 0) events = f.path().string();
  REQUIRE(!events.empty());
  Result py = run_command(std::string(HFTRAIN_PYTHON) + " " + HFTRAIN_SOURCE_DIR + "/tests/io/decode_tfevents.py " +
                          events);
  INFO(py.output);
  REQUIRE(py.exit_code == 0);
  std::map<std::string, std::map<int64_t, double>> scalars;
  std::istringstream lines(py.output);
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line);
    scalars[e["tag"]][e["step"]] = e["value"];
  }
  for (const char* tag : {"train/loss", "train/grad_norm", "train/learning_rate", "train/epoch", "eval/loss",
                          "eval/runtime", "train/train_loss", "train/total_flos"})
    CHECK(scalars.count(tag));
  for (const json& e : read_log(dir.str() + "/out/log.jsonl")) {
    if (e.contains("loss")) CHECK(scalars["train/loss"].at(e["step"]) == static_cast<double>(e["loss"].get<float>()));
    if (e.contains("eval_loss"))
      CHECK(scalars["eval/loss"].at(e["step"]) == static_cast<double>(e["eval_loss"].get<float>()));
  }
  // The plot: one polyline point per logged train loss (16 steps).
  const std::string svg = file_bytes(dir.str() + "/out/loss.svg");
  REQUIRE(svg.rfind("<svg", 0) == 0);
  const size_t start = svg.find("points=\"");
  REQUIRE(start != std::string::npos);
  const std::string pts = svg.substr(start + 8, svg.find('"', start + 8) - start - 8);
  CHECK(std::count(pts.begin(), pts.end(), ',') == 16);
}

TEST_CASE("metrics by name reach the eval logs, and predict writes predictions JSONL and test metrics",
          "[integration][flow]") {
  TempDir dir("predict");
  Result r = run("train --config " + write_config(dir) + " --set 'metrics=[accuracy, f1_macro, exact_match]'");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json eval;
  for (const json& e : read_log(dir.str() + "/out/log.jsonl"))
    if (e.contains("eval_loss")) eval = e;
  for (const char* k : {"eval_accuracy", "eval_f1_macro", "eval_exact_match"}) CHECK(eval.contains(k));
  CHECK(!eval.contains("eval_perplexity"));  // only what was asked for
  CHECK(eval["eval_accuracy"].get<double>() > 0.0);

  // 100 bytes of text: 3 windows of 32 bytes.
  const std::string input = dir.str() + "/input.txt";
  std::ofstream(input) << std::string(100, 'a');
  Result p = run("predict --checkpoint " + dir.str() + "/out/checkpoint-16 --input " + input + " --output " +
                 dir.str() + "/pred/predictions.jsonl");
  INFO(p.output);
  REQUIRE(p.exit_code == 0);
  std::vector<json> rows = read_log(dir.str() + "/pred/predictions.jsonl");
  REQUIRE(rows.size() == 3);
  CHECK(rows[2]["index"] == 2);
  CHECK(rows[0]["predicted_ids"].size() == 31);
  CHECK(rows[0]["predicted_text"].get<std::string>().size() == 31);
  json test = read_json(dir.str() + "/pred/test_results.json");
  for (const char* k : {"test_loss", "test_accuracy", "test_runtime", "test_samples_per_second"}) CHECK(test.contains(k));
  CHECK(run("predict --checkpoint " + dir.str() + "/out/checkpoint-16 --input /nonexistent.txt").exit_code == 2);
}

TEST_CASE("on a terminal a live progress bar shows step, loss, learning rate, it/s and ETA", "[integration][flow]") {
  TempDir dir("tty");
  // script(1) gives the run a pseudo-terminal.
  Result r = run_command("script -qec '" + std::string(HFTRAIN_BIN) + " train --config " + write_config(dir) +
                         "' /dev/null");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("] 16/16"));
  CHECK_THAT(r.output, Catch::Contains(" it/s  ETA "));
  CHECK_THAT(r.output, Catch::Contains("\r\033[K{"));  // a log line clears the bar first
  Result plain = run("train --config " + write_config(dir) + " --set output_dir=" + dir.str() + "/plain");
  CHECK(plain.output.find(" it/s") == std::string::npos);  // not a terminal: plain lines only
}

TEST_CASE("include_num_input_tokens_seen adds the tokens seen so far to every log, all or non-padding",
          "[integration][flow]") {
  TempDir dir("tokens-seen");
  // write_config's run: windows of 32 tokens, batch 4, accumulation 2: 256 input ids a step.
  Result r = run("train --config " + write_config(dir) + " --set max_steps=6 --set include_num_input_tokens_seen=true");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  int train_logs = 0, eval_logs = 0;
  for (const json& row : read_log(dir.str() + "/out/log.jsonl")) {
    INFO(row.dump());
    REQUIRE(row.contains("num_input_tokens_seen"));
    CHECK(row["num_input_tokens_seen"] == 256 * row["step"].get<int64_t>());
    train_logs += row.contains("loss");
    eval_logs += row.contains("eval_loss");
  }
  CHECK(train_logs == 6);
  CHECK(eval_logs == 1);
  CHECK(read_json(dir.str() + "/out/checkpoint-6/trainer_state.json")["num_input_tokens_seen"] == 6 * 256);

  // non_padding: the attention mask's ones. Rows of 3 to 10 bytes, batch 4, one epoch of 16
  // rows: every byte of the train rows once.
  std::string rows;
  int64_t bytes = 0;
  for (int i = 0; i < 16; ++i) {
    const std::string text(3 + (i * 5) % 8, 'a' + i % 7);
    rows += json{{"text", text}}.dump() + "\n";
    bytes += static_cast<int64_t>(text.size());
  }
  std::ofstream(dir.str() + "/rows.jsonl") << rows;
  Result p = run("train --config " + write_config(dir) + " --set output_dir=" + dir.str() + "/pad" +
                 " --set max_steps=-1 --set num_train_epochs=1 --set gradient_accumulation_steps=1" +
                 " --set eval_strategy=no --set save_strategy=no --set data.group_texts=false" +
                 " --set data.validation_split_percentage=0 --set include_num_input_tokens_seen=non_padding" +
                 " --set 'data.train={format: jsonl, path: " + dir.str() + "/rows.jsonl}' --set data.cache_dir=" +
                 dir.str() + "/cache");
  INFO(p.output);
  REQUIRE(p.exit_code == 0);
  const std::vector<double> seen = logged(dir.str() + "/pad/log.jsonl", "num_input_tokens_seen");
  REQUIRE(seen.size() == 5);  // 4 steps and the summary
  CHECK(seen.back() == bytes);
  CHECK(seen[0] < seen[3]);
}

TEST_CASE("label_smoothing_factor and neftune_noise_alpha change training; evaluation stays noise-free",
          "[integration][flow]") {
  TempDir dir("loss-options");
  const std::string cfg = write_config(dir) + " --set max_steps=6 --set eval_steps=6 --set save_steps=6";
  Result plain = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/plain");
  Result smooth = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/smooth --set label_smoothing_factor=0.1");
  Result noisy = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/noisy --set neftune_noise_alpha=5");
  INFO(plain.output << smooth.output << noisy.output);
  REQUIRE(plain.exit_code == 0);
  REQUIRE(smooth.exit_code == 0);
  REQUIRE(noisy.exit_code == 0);
  const double first = logged(dir.str() + "/plain/log.jsonl", "loss").at(0);
  // The same weights and batch at step 1: only the loss (smoothing) or the embeddings (noise) differ.
  CHECK(logged(dir.str() + "/smooth/log.jsonl", "loss").at(0) != first);
  CHECK(logged(dir.str() + "/noisy/log.jsonl", "loss").at(0) != first);
  // Evaluation has no noise and the same smoothing as in training: hftrain evaluate on the
  // checkpoint gives the in-training numbers.
  for (const char* run_name : {"smooth", "noisy"}) {
    INFO(run_name);
    const std::string out = dir.str() + "/" + run_name;
    Result e = run("evaluate --checkpoint " + out + "/checkpoint-6");
    REQUIRE(e.exit_code == 0);
    CHECK(read_json(out + "/checkpoint-6/eval_results.json")["eval_loss"] == logged(out + "/log.jsonl", "eval_loss").at(0));
  }
}

TEST_CASE("several eval datasets by name are each evaluated as eval_<name>_*, as HF's dict of eval datasets",
          "[integration][flow]") {
  TempDir dir("named-evals");
  const std::string a = "{format: generated, num_bytes: 1500, seed: 5}", b = "{format: generated, num_bytes: 900, seed: 6}";
  const std::string cfg = write_config(dir) + " --set max_steps=12";
  Result both = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/both --set 'data.eval={a: " + a +
                    ", b: " + b + "}' --set metric_for_best_model=eval_b_loss --set load_best_model_at_end=true");
  Result only_a = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/a --set 'data.eval=" + a + "'");
  Result only_b = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/b --set 'data.eval=" + b + "'");
  INFO(both.output << only_a.output << only_b.output);
  REQUIRE(both.exit_code == 0);
  REQUIRE(only_a.exit_code == 0);
  REQUIRE(only_b.exit_code == 0);
  // Evaluation changes no weights: each named set scores as the run that evaluates it alone.
  const std::vector<double> la = logged(dir.str() + "/both/log.jsonl", "eval_a_loss"),
                            lb = logged(dir.str() + "/both/log.jsonl", "eval_b_loss");
  REQUIRE(la.size() == 2);
  CHECK(la == logged(dir.str() + "/a/log.jsonl", "eval_loss"));
  CHECK(lb == logged(dir.str() + "/b/log.jsonl", "eval_loss"));
  CHECK(logged(dir.str() + "/both/log.jsonl", "eval_loss").empty());
  const json state = read_json(dir.str() + "/both/checkpoint-12/trainer_state.json");
  CHECK(state["best_metric"] == std::min(lb[0], lb[1]));
  Result e = run("evaluate --checkpoint " + dir.str() + "/both/checkpoint-12");
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  const json m = read_json(dir.str() + "/both/checkpoint-12/eval_results.json");
  CHECK(m["eval_a_loss"] == la[1]);
  CHECK(m["eval_b_loss"] == lb[1]);
  Result bad = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/bad --set 'data.eval={\"a b\": " + a + "}'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("data.eval: the name \"a b\" must be letters, digits"));
  // load_best_model_at_end's default metric, eval_loss, names no set: refused before training.
  bad = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/bad --set 'data.eval={a: " + a + "}'" +
            " --set load_best_model_at_end=true");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("with several eval datasets the metrics are eval_<name>_...: name one, e.g. eval_a_loss"));
  CHECK_FALSE(fs::exists(dir.str() + "/bad"));
}

TEST_CASE("prediction_loss_only evaluates the loss alone; label_names takes only \"labels\"", "[integration][flow]") {
  TempDir dir("loss-only");
  const std::string cfg = write_config(dir) + " --set max_steps=6 --set eval_steps=6 --set 'metrics=[accuracy, perplexity]'";
  Result full = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/full --set 'label_names=[labels]'");
  Result loss = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/loss --set prediction_loss_only=true");
  INFO(full.output << loss.output);
  REQUIRE(full.exit_code == 0);
  REQUIRE(loss.exit_code == 0);
  CHECK(logged(dir.str() + "/full/log.jsonl", "eval_accuracy").size() == 1);
  CHECK(logged(dir.str() + "/loss/log.jsonl", "eval_accuracy").empty());
  CHECK(logged(dir.str() + "/loss/log.jsonl", "eval_loss") == logged(dir.str() + "/full/log.jsonl", "eval_loss"));
  CHECK(logged(dir.str() + "/loss/log.jsonl", "eval_perplexity").size() == 1);
  Result bad = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/bad --set 'label_names=[start_positions]'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("label_names") && Catch::Contains("\"labels\""));
}

TEST_CASE("skip_memory_metrics false reports HF's memory metrics per stage", "[integration][flow]") {
  TempDir dir("memory-metrics");
  // 4 layers of width 256: 3.3 M parameters, whose AdamW moments alone are 26 MB.
  const std::string cfg = write_config(dir) + " --set max_steps=2 --set eval_steps=2 --set save_steps=2" +
                          " --set model.config.n_embd=256 --set model.config.n_layer=4 --set model.config.n_head=4" +
                          " --set skip_memory_metrics=false";
  Result r = run("train --config " + cfg);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const json train = read_json(dir.str() + "/out/train_results.json");
  for (const char* k : {"train_mem_cpu_alloc_delta", "train_mem_cpu_peaked_delta", "init_mem_cpu_alloc_delta",
                        "init_mem_cpu_peaked_delta", "before_init_mem_cpu"})
    CHECK(train.contains(k));
  CHECK(train["before_init_mem_cpu"].get<int64_t>() > 20 << 20);  // LibTorch and the model are loaded by then
  CHECK(train["train_mem_cpu_alloc_delta"].get<int64_t>() + train["train_mem_cpu_peaked_delta"].get<int64_t>() >=
        26 << 20);
  // An evaluation inside training is not tracked; on its own it is.
  for (const json& row : read_log(dir.str() + "/out/log.jsonl")) CHECK_FALSE(row.contains("eval_mem_cpu_alloc_delta"));
  Result e = run("evaluate --checkpoint " + dir.str() + "/out/checkpoint-2");
  REQUIRE(e.exit_code == 0);
  const json ev = read_json(dir.str() + "/out/checkpoint-2/eval_results.json");
  CHECK(ev.contains("eval_mem_cpu_alloc_delta"));
  CHECK(ev.contains("init_mem_cpu_peaked_delta"));
  Result plain = run("train --config " + write_config(dir) + " --set max_steps=2 --set output_dir=" + dir.str() + "/plain");
  REQUIRE(plain.exit_code == 0);
  CHECK_FALSE(read_json(dir.str() + "/plain/train_results.json").contains("train_mem_cpu_alloc_delta"));
}

TEST_CASE("auto_find_batch_size halves the batch on out-of-memory and trains as that batch size would from the start",
          "[integration][flow]") {
  TempDir dir("auto-batch");
  // Width 256, sequence 128: a batch of 32 needs far more than HFTRAIN_CPU_MEMORY_LIMIT leaves
  // beside the weights and AdamW's state; a quarter of it fits.
  const std::string cfg = write_config(dir) + " --set max_steps=4 --set eval_strategy=no --set save_steps=2" +
                          " --set per_device_train_batch_size=32 --set gradient_accumulation_steps=1" +
                          " --set model.config.n_embd=256 --set model.config.n_head=4 --set model.config.n_positions=128" +
                          " --set data.block_size=128 --set 'data.train={format: generated, num_bytes: 60000, seed: 1}'";
  const std::string limit = "HFTRAIN_CPU_MEMORY_LIMIT=90M ";
  Result r = run_command(limit + HFTRAIN_BIN + " train --config " + cfg + " --set auto_find_batch_size=true 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("out of memory at per_device_train_batch_size 32; retrying with 16"));
  const json state = read_json(dir.str() + "/out/checkpoint-4/trainer_state.json");
  const int64_t found = state.at("train_batch_size").get<int64_t>();
  CHECK(found < 32);
  CHECK(fs::exists(dir.str() + "/out/checkpoint-2"));
  // From the same state: the bytes of a run that used that batch size from the start.
  Result direct = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/direct" +
                      " --set per_device_train_batch_size=" + std::to_string(found));
  REQUIRE(direct.exit_code == 0);
  CHECK(file_bytes(dir.str() + "/out/model.safetensors") == file_bytes(dir.str() + "/direct/model.safetensors"));
  // Without it the out-of-memory ends the run; with nothing that fits, HF's words.
  Result plain = run_command(limit + HFTRAIN_BIN + " train --config " + cfg + " --set output_dir=" + dir.str() + "/plain 2>&1");
  CHECK(plain.exit_code == 1);
  CHECK_THAT(plain.output, Catch::Contains("can't allocate memory"));
  Result none = run_command(std::string("HFTRAIN_CPU_MEMORY_LIMIT=2M ") + HFTRAIN_BIN + " train --config " + cfg +
                            " --set output_dir=" + dir.str() + "/none --set auto_find_batch_size=true 2>&1");
  CHECK(none.exit_code == 1);
  CHECK_THAT(none.output, Catch::Contains("No executable batch size found, reached zero."));
}

TEST_CASE("a plugin named in the config adds a callback and a metric without rebuilding hftrain", "[integration][flow]") {
  TempDir dir("plugin");
  const std::string plugin = HFTRAIN_EXAMPLE_PLUGIN;
  const std::string cfg = write_config(dir) + " --set max_steps=16 --set eval_steps=4 --set 'plugins=[" + plugin + "]'" +
                          " --set 'metrics=[accuracy, token_error_rate]'";
  // The example's stop_below_loss stops at the first logged loss under its threshold.
  Result r = run("train --config " + cfg + " --set 'callbacks=[{name: stop_below_loss, threshold: 5.2}]' 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::vector<double> losses = logged(dir.str() + "/out/log.jsonl", "loss");
  REQUIRE(!losses.empty());
  CHECK(losses.back() < 5.2);
  for (size_t i = 0; i + 1 < losses.size(); ++i) CHECK(losses[i] >= 5.2);
  CHECK(losses.size() < 16);
  // token_error_rate counts what accuracy counts, the other way round.
  const std::vector<double> acc = logged(dir.str() + "/out/log.jsonl", "eval_accuracy"),
                            err = logged(dir.str() + "/out/log.jsonl", "eval_token_error_rate");
  REQUIRE(acc.size() == err.size());
  for (size_t i = 0; i < acc.size(); ++i) CHECK(std::abs(acc[i] + err[i] - 1.0) < 1e-12);
  // The checkpoint's config names the plugin: evaluate loads it again.
  Result full = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/full --set max_steps=4 2>&1");
  REQUIRE(full.exit_code == 0);
  Result e = run("evaluate --checkpoint " + dir.str() + "/full/checkpoint-4 2>&1");
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  CHECK(read_json(dir.str() + "/full/checkpoint-4/eval_results.json").contains("eval_token_error_rate"));
  // Bad plugins and options are named.
  Result missing = run("train --config " + write_config(dir) + " --set 'plugins=[" + dir.str() + "/nope.so]' 2>&1");
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.output, Catch::Contains("nope.so does not exist"));
  Result not_plugin = run("train --config " + write_config(dir) + " --set 'plugins=[" + std::string(HFTRAIN_BIN) + "]' 2>&1");
  CHECK(not_plugin.exit_code == 2);
  CHECK_THAT(not_plugin.output, Catch::Contains("could not be loaded") || Catch::Contains("has no hftrain_plugin_register"));
  Result options = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/opt --set 'callbacks=[stop_below_loss]' 2>&1");
  CHECK(options.exit_code == 2);
  CHECK_THAT(options.output, Catch::Contains("stop_below_loss needs a number \"threshold\""));
}

TEST_CASE("include_for_metrics gives plugin metrics the inputs and losses, as HF's EvalPrediction", "[integration][flow]") {
  TempDir dir("include-for-metrics");
  // The eval file: 4 windows of 32 bytes, so 2 eval batches of 2 and 31 scored positions a window.
  std::string text;
  for (int i = 0; i < 128; ++i) text += static_cast<char>('a' + (i * 11) % 26);
  std::ofstream(dir.str() + "/eval.txt") << text;
  double ids = 0;
  for (int w = 0; w < 4; ++w)
    for (int t = 0; t < 31; ++t) ids += static_cast<unsigned char>(text[w * 32 + t]);
  Result r = run("train --config " + write_config(dir) + " --set max_steps=2 --set eval_steps=2" +
                 " --set per_device_eval_batch_size=2 --set 'plugins=[" + std::string(HFTRAIN_EXAMPLE_PLUGIN) + "]'" +
                 " --set 'metrics=[mean_batch_loss, input_id_sum]' --set 'include_for_metrics=[inputs, loss]'" +
                 " --set 'data.eval={format: text, path: " + dir.str() + "/eval.txt}' 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string log = dir.str() + "/out/log.jsonl";
  // Equal batches: the mean of the batch means is the eval loss (float32 losses, summed in another order).
  CHECK(logged(log, "eval_mean_batch_loss").at(0) == Approx(logged(log, "eval_loss").at(0)).epsilon(1e-6));
  CHECK(logged(log, "eval_input_id_sum").at(0) == ids);
  Result bad = run("train --config " + write_config(dir) + " --set output_dir=" + dir.str() + "/bad" +
                   " --set 'include_for_metrics=[logits]' 2>&1");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("include_for_metrics takes \"inputs\" and \"loss\", got \"logits\""));
}
