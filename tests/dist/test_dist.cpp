// The launcher's variables, and c10d over them: two processes started by scripts/launch
// rendezvous, broadcast and all-reduce on Gloo; a rank that dies stops the other. Data
// parallel training: gradients averaged in buckets, parameters equal on every rank, a 2-rank
// run equal to a 1-rank run of the same global batch, and 2-rank checkpoints that resume.
#include "hftrain/builtins.h"
#include "hftrain/config/config.h"
#include "hftrain/data/dataset.h"
#include "hftrain/data/tokenizer.h"
#include "hftrain/dist/env.h"
#include "hftrain/dist/grad_reducer.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/train/trainer.h"
#include "../cli/cli_util.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace {

std::function<std::optional<std::string>(const char*)> env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

int free_port() {
  static int next = 29600 + static_cast<int>(::getpid() % 2000);
  return next += 7;
}

std::string launch_command(int nproc, const std::string& command, const std::string& extra_env = "") {
  return extra_env + " " + std::string(HFTRAIN_SOURCE_DIR) + "/scripts/launch --nproc " + std::to_string(nproc) +
         " --master-port " + std::to_string(free_port()) + " -- " + command + " 2>&1";
}

std::string launch(int nproc, const std::string& extra_env = "", const std::string& worker = "[.dist_worker]") {
  return launch_command(nproc, std::string(HFTRAIN_TESTS_BIN) + " '" + worker + "'", extra_env);
}

hftrain::DistEnv worker_env() {
  const hftrain::DistEnv env = hftrain::dist_env_from_process();
  REQUIRE(env.world_size == 2);
  return env;
}


}  // namespace

using hftrain::test::logged;

TEST_CASE("rank and world come from torchrun's variables, else Slurm's; bad values are named", "[unit][dist]") {
  hftrain::DistEnv e = hftrain::dist_env(env_of({}));
  CHECK(e.world_size == 1);
  CHECK_FALSE(e.distributed());
  e = hftrain::dist_env(env_of({{"RANK", "3"}, {"LOCAL_RANK", "1"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "node0"},
                                {"MASTER_PORT", "1234"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "9"}}));
  CHECK(e.source == "torchrun");
  CHECK(e.rank == 3);
  CHECK(e.local_rank == 1);
  CHECK(e.world_size == 4);
  CHECK(e.master_addr == "node0");
  CHECK(e.master_port == 1234);
  CHECK_FALSE(e.agent_store);
  e = hftrain::dist_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "2"},
                                {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "3"}}));
  CHECK(e.agent_store);
  CHECK(e.restart_count == 3);
  e = hftrain::dist_env(env_of({{"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS", "8"},
                                {"MASTER_ADDR", "n"}, {"MASTER_PORT", "29500"}}));
  CHECK(e.source == "slurm");
  CHECK(e.rank == 5);
  CHECK(e.world_size == 8);
  using hftrain::test::require_error;
  require_error(hftrain::Error::kUser, [] { hftrain::dist_env(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}})); },
                {"rank 2 is outside a world of 2"});
  require_error(hftrain::Error::kUser, [] { hftrain::dist_env(env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})); },
                {"RANK=x"});
  require_error(hftrain::Error::kUser, [] { hftrain::dist_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}})); },
                {"MASTER_ADDR and MASTER_PORT"});
}

// Run by the tests below through scripts/launch, never on its own (hidden tag).
TEST_CASE("dist worker", "[.dist_worker]") {
  const hftrain::DistEnv env = hftrain::dist_env_from_process();
  REQUIRE(env.world_size == 2);
  if (std::getenv("HFTRAIN_TEST_DIE_RANK") && env.rank == std::atoi(std::getenv("HFTRAIN_TEST_DIE_RANK")))
    std::_Exit(7);  // a rank that dies before the rendezvous completes
  hftrain::ProcessGroup pg(env, std::chrono::milliseconds(20000));
  std::vector<at::Tensor> t = {env.rank == 0 ? at::arange(4, at::kFloat) : at::zeros({4}, at::kFloat)};
  pg.broadcast(t, 0);
  CHECK(t[0].equal(at::arange(4, at::kFloat)));
  std::vector<at::Tensor> r = {at::full({3}, static_cast<double>(env.rank + 1), at::kFloat)};
  pg.all_reduce_sum(r);
  CHECK(r[0].equal(at::full({3}, 3.0, at::kFloat)));
  pg.barrier();
}

TEST_CASE("two processes from scripts/launch rendezvous and all-reduce on Gloo", "[dist]") {
  auto r = hftrain::test::run_command(launch(2));
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

TEST_CASE("scripts/launch with --nnodes 2 starts one node's ranks each; the nodes meet at the master", "[dist]") {
  const std::string node = std::string(HFTRAIN_SOURCE_DIR) + "/scripts/launch --nnodes 2 --nproc 1 --master-port " +
                           std::to_string(free_port()) + " --node-rank ";
  const std::string worker = std::string(" -- ") + HFTRAIN_TESTS_BIN + " '[.dist_worker]'";
  auto r = hftrain::test::run_command("bash -c '" + node + "1" + worker + " > /dev/null 2>&1 & p=$!; " + node + "0" +
                                      worker + "; a=$?; wait $p; b=$?; echo node0 $a node1 $b' 2>&1");
  INFO(r.output);
  CHECK_THAT(r.output, Catch::Contains("node0 0 node1 0"));
}

TEST_CASE("when one rank dies the launcher stops the other and exits with its code", "[dist]") {
  auto r = hftrain::test::run_command(launch(2, "HFTRAIN_TEST_DIE_RANK=1"));
  INFO(r.output);
  CHECK(r.exit_code == 7);
  CHECK_THAT(r.output, Catch::Contains("stopping the others"));
}

// Rank-dependent gradients through the reducer, checked against the mean of the ranks' own
// gradients gathered by plain all-gathers. Caps of 8 bytes (first) and 64: buckets {3}, {2},
// {1, 0}. Parameter 3 is unused on rank 0, whose first bucket therefore goes only at finish()
// and holds back the others (launch order is the same on both ranks).
TEST_CASE("dist reducer worker", "[.dist_reducer_worker]") {
  const hftrain::DistEnv env = worker_env();
  hftrain::ProcessGroup pg(env, std::chrono::milliseconds(20000));
  at::manual_seed(static_cast<uint64_t>(10 + env.rank));  // different start values per rank
  std::vector<at::Tensor> params = {at::randn({4, 6}).requires_grad_(), at::randn({4}).requires_grad_(),
                                    at::randn({6, 3}).requires_grad_(), at::randn({3}).requires_grad_()};
  hftrain::GradReducer reducer(pg, params, /*bucket_cap_bytes=*/64, /*first_bucket_bytes=*/8);
  CHECK(reducer.num_buckets() == 3);
  reducer.broadcast_parameters(0);
  std::vector<at::Tensor> flat;
  for (const auto& p : params) flat.push_back(p.detach().reshape(-1));
  const auto gathered = pg.all_gather(at::cat(flat));
  REQUIRE(gathered[0].equal(gathered[1]));  // rank 0's values everywhere

  // Two micro-steps: the first accumulates locally; the second reduces. params[3] is used on
  // rank 1 only, so rank 0 contributes zero for it.
  auto loss_of = [&](const at::Tensor& x, bool use_last) {
    at::Tensor h = at::tanh(at::matmul(x, params[0].t()) + params[1]);
    at::Tensor y = at::matmul(h, params[2].narrow(0, 0, 4));
    if (use_last) y = y + params[3];
    return y.pow(2).mean();
  };
  const at::Tensor x1 = at::randn({5, 6}), x2 = at::randn({5, 6});  // rank-dependent data
  const bool uses_last = env.rank == 1;
  reducer.prepare(false);
  loss_of(x1, uses_last).backward();
  const at::Tensor local_first = params[0].grad().clone();
  reducer.prepare(true);
  loss_of(x2, uses_last).backward();
  std::vector<at::Tensor> local;  // this rank's accumulated gradients, before the reduction
  for (const auto& p : params) local.push_back(p.grad().defined() ? p.grad().reshape(-1).clone() : at::zeros({p.numel()}));
  reducer.finish();
  CHECK_FALSE(params[0].grad().equal(local_first));  // the second micro-step reached the grad
  const auto all = pg.all_gather(at::cat(local));
  const at::Tensor expected = (all[0] + all[1]) / 2;
  std::vector<at::Tensor> reduced;
  for (const auto& p : params) reduced.push_back(p.grad().reshape(-1));
  CHECK(at::allclose(at::cat(reduced), expected, 1e-6, 1e-7));
  pg.barrier();
}

TEST_CASE("the gradient reducer averages bucketed gradients once per accumulation window", "[dist]") {
  auto r = hftrain::test::run_command(launch(2, "", "[.dist_reducer_worker]"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

// A Trainer over the process group, from rank-dependent initial weights and dropout: after
// training, every rank holds the same parameters, and they moved.
TEST_CASE("dist trainer worker", "[.dist_trainer_worker]") {
  const hftrain::DistEnv env = worker_env();
  auto pg = std::make_shared<hftrain::ProcessGroup>(env, std::chrono::milliseconds(60000));
  hftrain::register_builtins();
  hftrain::ConfigSource src;
  hftrain::config_merge_text(src, std::string("output_dir: ") + std::getenv("HFTRAIN_TEST_OUT") + R"(
max_steps: 5
per_device_train_batch_size: 3
gradient_accumulation_steps: 2
learning_rate: 1.0e-2
logging_steps: 2
save_strategy: "no"
ddp_bucket_cap_mb: 1
model:
  type: gpt2
  config: {vocab_size: 256, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2}
data:
  block_size: 16
  train: {format: generated, num_bytes: 2000, seed: 4}
)", "worker config");
  const hftrain::Config c = hftrain::config_resolve(src);
  std::filesystem::create_directories(c.args.output_dir);
  auto tok = hftrain::tokenizer_load(c.data.tokenizer);
  hftrain::Datasets data = hftrain::datasets_load(c.data, *tok);
  at::manual_seed(static_cast<uint64_t>(100 + env.rank));
  auto model = hftrain::model_create(c.model);
  auto flat = [&] {
    std::vector<at::Tensor> v;
    for (const auto& p : model->named_parameters()) v.push_back(p.value().detach().reshape(-1));
    return at::cat(v).clone();
  };
  const at::Tensor before = flat();
  const auto start = pg->all_gather(before);
  REQUIRE_FALSE(start[0].equal(start[1]));
  hftrain::Trainer trainer(c, model, tok, std::move(data), pg);
  trainer.train(nullptr);
  const auto after = pg->all_gather(flat());
  CHECK(after[0].equal(after[1]));
  CHECK_FALSE(after[0].equal(start[0]));
  pg->barrier();
}

TEST_CASE("after data parallel training every rank holds the same parameters", "[dist]") {
  hftrain::test::TempDir dir("ddp-params");
  auto r = hftrain::test::run_command(launch(2, "HFTRAIN_TEST_OUT=" + dir.str() + "/out", "[.dist_trainer_worker]"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  // Rank 0 alone logged.
  CHECK(logged(dir.str() + "/out/log.jsonl", "loss").size() == 2);
}

namespace {

// No dropout, so that batch b on 2 ranks and batch 2b on 1 rank compute the same function.
// The eval set (6 windows, batches of 4) does not split evenly over 2 ranks.
std::string ddp_config(const hftrain::test::TempDir& dir, const std::string& extra = "") {
  const std::string path = dir.str() + "/run.yaml";
  std::ofstream(path) << R"(gradient_accumulation_steps: 2
learning_rate: 3.0e-3
lr_scheduler_type: cosine
warmup_steps: 2
logging_steps: 1
eval_strategy: steps
eval_steps: 4
save_steps: 4
per_device_eval_batch_size: 4
seed: 3
metrics: [perplexity, accuracy]
model:
  type: gpt2
  config: {vocab_size: 256, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2,
           resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}
data:
  block_size: 32
  validation_split_percentage: 5
  train: {format: generated, num_bytes: 4000, seed: 1}
)" << extra;
  return path;
}

void check_same_run(const std::string& log_a, const std::string& log_b) {
  for (const char* key : {"loss", "eval_loss", "eval_accuracy", "grad_norm", "train_loss", "learning_rate"}) {
    INFO(key);
    const auto a = logged(log_a, key), b = logged(log_b, key);
    REQUIRE(a.size() == b.size());
    REQUIRE(!a.empty());
    // Logged step losses are rounded to 4 decimals: one unit of the last place apart at most.
    const double tol = std::string(key) == "loss" ? 1.01e-4 : 1e-5;
    for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) <= tol * std::max(1.0, std::abs(a[i])));
  }
}

}  // namespace

TEST_CASE("2 ranks with batch b log the losses of 1 rank with batch 2b on the same data order", "[dist]") {
  using hftrain::test::run;
  hftrain::test::TempDir dir("ddp-equal");
  const std::string cfg = ddp_config(dir, "max_steps: 8\n");
  const std::string bin = HFTRAIN_BIN;
  auto one = run("train --config " + cfg + " --set per_device_train_batch_size=4 --set output_dir=" + dir.str() +
                 "/one 2>&1");
  REQUIRE(one.exit_code == 0);
  for (const std::string avg : {"false", "true"}) {
    INFO("average_tokens_across_devices " << avg);
    auto two = hftrain::test::run_command(launch_command(
        2, bin + " train --config " + cfg + " --set per_device_train_batch_size=2 --set output_dir=" + dir.str() +
               "/two-" + avg + " --set average_tokens_across_devices=" + avg + " --set no_cuda=true"));
    INFO(two.output);
    REQUIRE(two.exit_code == 0);
    // A config warning is printed by rank 0 alone.
    const std::string warning = "no_cuda is deprecated, use use_cpu";
    const size_t first = two.output.find(warning);
    CHECK(first != std::string::npos);
    CHECK(two.output.find(warning, first + 1) == std::string::npos);
    check_same_run(dir.str() + "/one/log.jsonl", dir.str() + "/two-" + avg + "/log.jsonl");
    // Every rank's RNG state is in the checkpoint; rank 0 wrote the rest.
    CHECK(std::filesystem::exists(dir.str() + "/two-" + avg + "/checkpoint-4/rng_state_1.pth"));
    CHECK_FALSE(std::filesystem::exists(dir.str() + "/two-" + avg + "/checkpoint-4/rng_state.pth"));
  }
}

TEST_CASE("a 2-rank checkpoint resumes on 2 ranks as the uninterrupted run", "[dist]") {
  namespace fs = std::filesystem;
  hftrain::test::TempDir dir("ddp-resume");
  const std::string cfg = ddp_config(dir, "per_device_train_batch_size: 2\nmax_steps: 8\n");
  const std::string bin = HFTRAIN_BIN;
  // Dropout on: each rank's RNG state must be restored for the resumed run to match.
  const std::string dropout = " --set model.config.resid_pdrop=0.1 --set model.config.attn_pdrop=0.1";
  auto full = hftrain::test::run_command(
      launch_command(2, bin + " train --config " + cfg + dropout + " --set output_dir=" + dir.str() + "/full"));
  INFO(full.output);
  REQUIRE(full.exit_code == 0);
  fs::create_directories(dir.str() + "/resumed");
  fs::copy(dir.str() + "/full/checkpoint-4", dir.str() + "/resumed/checkpoint-4", fs::copy_options::recursive);
  auto resumed = hftrain::test::run_command(launch_command(
      2, bin + " train --config " + cfg + dropout + " --set output_dir=" + dir.str() +
             "/resumed --set resume_from_checkpoint=true"));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  using hftrain::test::file_bytes;
  CHECK(file_bytes(dir.str() + "/resumed/model.safetensors") == file_bytes(dir.str() + "/full/model.safetensors"));
  auto tail = logged(dir.str() + "/full/log.jsonl", "loss");
  tail.erase(tail.begin(), tail.begin() + 4);
  CHECK(logged(dir.str() + "/resumed/log.jsonl", "loss") == tail);

  // One process with the same per-device batch would train another global batch: exit 2, and
  // nothing is written.
  auto one = hftrain::test::run("train --config " + cfg + " --set output_dir=" + dir.str() +
                                "/other --set resume_from_checkpoint=" + dir.str() + "/full/checkpoint-4 2>&1");
  CHECK(one.exit_code == 2);
  CHECK_THAT(one.output, Catch::Contains("saved by a run of 2 process(es) with batch size 2 each (4 in all) and this "
                                         "run has 1 x 2 = 2: a resume on another world size needs the same global batch"));
  CHECK_FALSE(fs::exists(dir.str() + "/other"));
}

namespace {

// Checkpoint `a` and `b` open in Python's torch with the same structure, and their weights and
// optimizer state agree within `tol` (tests/dist/compare_checkpoints.py).
void check_same_checkpoint(const std::string& a, const std::string& b, double tol) {
  auto py = hftrain::test::run_command(std::string(HFTRAIN_PYTHON) + " " + HFTRAIN_SOURCE_DIR +
                                       "/tests/dist/compare_checkpoints.py " + a + " " + b + " " + std::to_string(tol) +
                                       " 2>&1");
  INFO(a << " vs " << b << ": " << py.output);
  CHECK(py.exit_code == 0);
}

}  // namespace

// The same data and seed through plain data parallel and each ZeRO stage, under HF's
// spellings: losses, gradient norms (clipping on: max_grad_norm 1 is below them) and eval
// metrics as logged, and the checkpoint's weights and optimizer.pt, within 1e-5.
TEST_CASE("ZeRO stages 1, 2 and 3 train as plain data parallel does, and save its checkpoint", "[dist]") {
  hftrain::test::TempDir dir("zero-equal");
  const std::string cfg = ddp_config(dir, "per_device_train_batch_size: 2\nmax_steps: 8\n");
  const std::string bin = HFTRAIN_BIN;
  auto train = [&](const std::string& name, const std::string& extra) {
    auto r = hftrain::test::run_command(
        launch_command(2, bin + " train --config " + cfg + " --set output_dir=" + dir.str() + "/" + name + extra));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return r.output;
  };
  train("ddp", "");
  const std::pair<std::string, std::string> runs[] = {
      {"zero1", " --set 'deepspeed={\"zero_optimization\": {\"stage\": 1}, \"gradient_clipping\": \"auto\"}'"},
      {"zero2", " --set fsdp=shard_grad_op"},
      {"zero3", " --set 'fsdp=full_shard auto_wrap'"},
      // FSDP's activation checkpointing: the blocks are gathered again for the recompute. Eval
      // batches of 2 leave rank 1 a last batch of top-up rows only, which it runs to keep step.
      {"zero3-recompute", " --set fsdp=full_shard --set fsdp_config.activation_checkpointing=true"
                          " --set per_device_eval_batch_size=2"},
  };
  for (const auto& [name, extra] : runs) {
    INFO(name);
    const std::string out = train(name, extra);
    CHECK_THAT(out, Catch::Contains("sharded: ZeRO stage " + name.substr(4, 1) + ", 3 units"));
    check_same_run(dir.str() + "/ddp/log.jsonl", dir.str() + "/" + name + "/log.jsonl");
    check_same_checkpoint(dir.str() + "/ddp/checkpoint-8", dir.str() + "/" + name + "/checkpoint-8", 1e-5);
  }
  // Llama with tied embeddings (the root unit's weight serves the head too), and a LoRA run,
  // whose frozen base weights stay whole and whose adapters are sharded.
  const std::string llama = " --set model.type=llama --set 'model.config={vocab_size: 256, hidden_size: 32, "
                            "intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, "
                            "max_position_embeddings: 32, tie_word_embeddings: true}'";
  const std::string lora = " --set peft.r=4 --set 'peft.target_modules=[q_proj, v_proj]'";
  train("llama-ddp", llama);
  train("llama-zero3", llama + " --set fsdp=full_shard");
  check_same_run(dir.str() + "/llama-ddp/log.jsonl", dir.str() + "/llama-zero3/log.jsonl");
  check_same_checkpoint(dir.str() + "/llama-ddp/checkpoint-8", dir.str() + "/llama-zero3/checkpoint-8", 1e-5);
  train("lora-ddp", llama + lora);
  train("lora-zero3", llama + lora + " --set fsdp=full_shard");
  check_same_run(dir.str() + "/lora-ddp/log.jsonl", dir.str() + "/lora-zero3/log.jsonl");
}

// optimizer.pt is the whole optimizer's state: a sharded checkpoint resumes bit for bit on
// its own world size, and on another one (here as one process, and one process's checkpoint
// on two sharded ranks) with the same global batch as the uninterrupted run.
TEST_CASE("a sharded checkpoint resumes exactly, and on another world size with the same global batch", "[dist]") {
  namespace fs = std::filesystem;
  hftrain::test::TempDir dir("zero-resume");
  const std::string cfg = ddp_config(dir, "max_steps: 8\n");
  const std::string bin = HFTRAIN_BIN;
  auto two = [&](const std::string& out, const std::string& extra) {
    auto r = hftrain::test::run_command(launch_command(
        2, bin + " train --config " + cfg + " --set per_device_train_batch_size=2 --set output_dir=" + dir.str() + "/" +
               out + extra));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return r.output;
  };
  auto one = [&](const std::string& out, const std::string& extra) {
    auto r = hftrain::test::run("train --config " + cfg + " --set per_device_train_batch_size=4 --set output_dir=" +
                                dir.str() + "/" + out + extra + " 2>&1");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return r.output;
  };
  auto resume_from = [&](const std::string& from, const std::string& to) {
    fs::create_directories(dir.str() + "/" + to);
    fs::copy(dir.str() + "/" + from + "/checkpoint-4", dir.str() + "/" + to + "/checkpoint-4", fs::copy_options::recursive);
    return std::string(" --set resume_from_checkpoint=true");
  };
  auto tail = [&](const std::string& run) {
    auto losses = logged(dir.str() + "/" + run + "/log.jsonl", "loss");
    losses.erase(losses.begin(), losses.begin() + 4);
    return losses;
  };
  using hftrain::test::file_bytes;
  {
    INFO("stage 3 on 2 ranks, dropout on: each rank's RNG state comes back");
    const std::string dropout = " --set fsdp=full_shard --set model.config.resid_pdrop=0.1 --set model.config.attn_pdrop=0.1";
    two("full3", dropout);
    two("resumed3", dropout + resume_from("full3", "resumed3"));
    CHECK(file_bytes(dir.str() + "/resumed3/model.safetensors") == file_bytes(dir.str() + "/full3/model.safetensors"));
    CHECK(logged(dir.str() + "/resumed3/log.jsonl", "loss") == tail("full3"));
  }
  {
    INFO("stage 2 on 2 ranks, resumed by one process with batch 4");
    two("full2", " --set fsdp=shard_grad_op");
    const std::string out = one("one-from-2", resume_from("full2", "one-from-2"));
    CHECK_THAT(out, Catch::Contains("was saved by 2 process(es) and this run has 1: the data continues from step 4"));
    const auto a = logged(dir.str() + "/one-from-2/log.jsonl", "loss"), b = tail("full2");
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) <= 1.01e-4);
    check_same_checkpoint(dir.str() + "/full2/checkpoint-8", dir.str() + "/one-from-2/checkpoint-8", 1e-5);
  }
  {
    INFO("one process with batch 4, resumed by 2 ranks at stage 3");
    one("single", "");
    two("3-from-1", " --set fsdp=full_shard" + resume_from("single", "3-from-1"));
    const auto a = logged(dir.str() + "/3-from-1/log.jsonl", "loss"), b = tail("single");
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) <= 1.01e-4);
    check_same_checkpoint(dir.str() + "/single/checkpoint-8", dir.str() + "/3-from-1/checkpoint-8", 1e-5);
  }
}

TEST_CASE("when a rank dies mid-training the other stops with an error naming it", "[dist]") {
  // Plain, and fully sharded: there the collectives also run inside backward's hooks.
  const std::string sharding = GENERATE(std::string(), std::string(" --set fsdp=full_shard"));
  INFO("sharding:" << sharding);
  hftrain::test::TempDir dir("ddp-die");
  const std::string cfg = ddp_config(dir, "per_device_train_batch_size: 2\n");
  const std::string train = std::string(HFTRAIN_BIN) + " train --config " + cfg + " --set output_dir=" + dir.str() +
                            "/out --set max_steps=1000000 --set eval_strategy=no --set save_strategy=no"
                            " --set ddp_timeout=60" + sharding;
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2";
  auto r = hftrain::test::run_command("bash -c '" + env + " RANK=0 " + train + " > " + dir.str() + "/r0.txt 2>&1 & p0=$!; " +
                                      env + " RANK=1 " + train + " > /dev/null 2>&1 & p1=$!; sleep 3; kill -9 $p1; " +
                                      "wait $p0; echo rank0 exited $?; cat " + dir.str() + "/r0.txt' 2>&1");
  INFO(r.output);
  CHECK_THAT(r.output, Catch::Contains("rank0 exited 1"));
  // Whichever collective rank 0 was in when rank 1 died.
  CHECK_THAT(r.output, Catch::Contains("hftrain: error: rank 0: ") &&
                           Catch::Contains("failed (another rank stopped, or ddp_timeout passed)"));
}

TEST_CASE("a backend hftrain cannot run is refused with exit 2 before the rendezvous", "[dist]") {
  hftrain::test::TempDir dir("ddp-backend");
  auto r = hftrain::test::run_command("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 " +
                                      std::string(HFTRAIN_BIN) + " train --set ddp_backend=nccl --set output_dir=" +
                                      dir.str() + "/out 2>&1");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("ddp_backend nccl needs CUDA"));
  CHECK_FALSE(std::filesystem::exists(dir.str() + "/out"));
}

// torchrun serves the store itself (TORCHELASTIC_USE_AGENT_STORE). Debian's torchrun 1.13
// under Python 3.11 cannot parse its own default --redirects/--tee "0", hence "1".
TEST_CASE("hftrain runs unchanged under torchrun --no_python", "[dist]") {
  if (std::system("command -v torchrun > /dev/null 2>&1") != 0) {
    WARN("torchrun not installed (python3-torch); skipped");
    return;
  }
  hftrain::test::TempDir dir("ddp-torchrun");
  const std::string cfg = ddp_config(dir, "per_device_train_batch_size: 2\nmax_steps: 4\n");
  const std::string train = std::string(HFTRAIN_BIN) + " train --config " + cfg + " --set output_dir=" + dir.str();
  auto ours = hftrain::test::run_command(launch_command(2, train + "/launch"));
  REQUIRE(ours.exit_code == 0);
  auto r = hftrain::test::run_command("torchrun --nproc_per_node 2 --master_port " + std::to_string(free_port()) +
                                      " --redirects 1 --tee 1 --log_dir " + dir.str() + "/logs --no_python " + train +
                                      "/torchrun 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(logged(dir.str() + "/torchrun/log.jsonl", "loss") == logged(dir.str() + "/launch/log.jsonl", "loss"));
}
