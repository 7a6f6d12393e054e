// Data parallel scaling on the CPU: `hftrain train` as 2 ranks (scripts/launch, Gloo, the
// cores split between them by hftrain's default) against 1 rank on one thread
// (OMP_NUM_THREADS=1: the per-process baseline) and against 1 rank on every core with the
// global batch (what the same cores do without data parallelism). Runs are back to back,
// three rounds, medians of train_samples_per_second.
//   build/bench_ddp [--steps N] [--rounds R]
// Scaling efficiency = samples/s on 2 ranks / (2 x samples/s on 1 rank, same threads each).
//
// Sharding: peak resident memory per rank of plain data parallel and ZeRO stages 1, 2 and 3
// on 2 ranks, with a model whose AdamW state dominates (GPT-2's 12 x 768 body, vocabulary 256,
// one row of 64 tokens per rank), in bytes per parameter beyond the process's floor (the same
// run with a 1 x 16 model) beside the optimizer state the stage keeps, and each stage's
// throughput against data parallel's, back to back; then data parallel and stage 3 on 4 ranks
// (on 2 cores: for memory, not speed).
//   build/bench_ddp --memory [--steps N] [--rounds R]
// Each rank runs under this program's --peak-rss wrapper, which writes the rank's wait4
// ru_maxrss.
#include "bench_util.h"

#include <nlohmann/json.hpp>
#include <fmt/format.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using json = nlohmann::json;

namespace {

struct Size {
  const char* name;
  int64_t layers, width, heads, seq, batch;
};

std::string config(const Size& s, int64_t steps) {
  return fmt::format(R"(max_steps: {}
learning_rate: 1.0e-3
lr_scheduler_type: cosine
warmup_steps: 2
logging_steps: {}
save_strategy: "no"
overwrite_output_dir: true
metrics: []
model: {{type: gpt2, config: {{vocab_size: 256, n_positions: {}, n_embd: {}, n_layer: {}, n_head: {},
         resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}}}}
data: {{block_size: {}, validation_split_percentage: 0, train: {{format: generated, num_bytes: 4000000}}}}
)",
                     steps, steps, s.seq, s.width, s.layers, s.heads, s.seq);
}

// One run: samples per second over the whole run (HF's train_samples_per_second), 0 on failure.
double run(const std::string& cfg, const std::string& out, int nproc, const char* env, int64_t batch) {
  const std::string cmd = fmt::format(
      "{} {}/scripts/launch --nproc {} --master-port {} -- {}/build/hftrain train --config {} "
      "--set per_device_train_batch_size={} --set output_dir={} > {}.txt 2>&1",
      env, HFTRAIN_SOURCE, nproc, 29900 + nproc, HFTRAIN_SOURCE, cfg, batch, out, out);
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s (see %s.txt)\n", cmd.c_str(), out.c_str());
    return 0;
  }
  std::ifstream in(out + "/train_results.json");
  return json::parse(in).at("train_samples_per_second").get<double>();
}

// --peak-rss PREFIX -- command...: runs the command, writes its peak RSS in KB to
// PREFIX.<RANK>, and exits with its status.
int peak_rss_wrapper(const char* prefix, char** command) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execv(command[0], command);
    std::perror(command[0]);
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  const char* rank = std::getenv("RANK");
  std::ofstream(std::string(prefix) + "." + (rank ? rank : "0")) << ru.ru_maxrss << "\n";
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

struct Sharded {
  double samples_per_s = 0, peak_mb = 0;  // the largest rank's peak
};

Sharded run_ranks(const std::string& self, const std::string& cfg, const std::string& out, int nproc,
                  const std::string& extra) {
  std::filesystem::remove_all(out);
  const std::string cmd = fmt::format(
      "{}/scripts/launch --nproc {} --master-port {} -- {} --peak-rss {}.rss -- {}/build/hftrain train --config {} "
      "--set output_dir={} {} > {}.txt 2>&1",
      HFTRAIN_SOURCE, nproc, 29950 + nproc, self, out, HFTRAIN_SOURCE, cfg, out, extra, out);
  Sharded r;
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s (see %s.txt)\n", cmd.c_str(), out.c_str());
    return r;
  }
  std::ifstream in(out + "/train_results.json");
  r.samples_per_s = json::parse(in).at("train_samples_per_second").get<double>();
  for (int rank = 0; rank < nproc; ++rank) {
    double kb = 0;
    std::ifstream(out + ".rss." + std::to_string(rank)) >> kb;
    r.peak_mb = std::max(r.peak_mb, kb / 1024);
  }
  return r;
}

int memory_bench(const std::string& self, int64_t steps, int64_t rounds) {
  const std::string work = "/tmp/hftrain_bench_zero";
  std::filesystem::create_directories(work);
  auto config = [&](int64_t layers, int64_t width) {
    return fmt::format(R"(max_steps: {}
learning_rate: 1.0e-4
logging_steps: {}
save_strategy: "no"
per_device_train_batch_size: 1
metrics: []
model: {{type: gpt2, config: {{vocab_size: 256, n_positions: 64, n_embd: {}, n_layer: {}, n_head: 4,
         resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}}}}
data: {{block_size: 64, validation_split_percentage: 0, train: {{format: generated, num_bytes: 400000}}}}
)",
                       steps, steps, width, layers);
  };
  const std::string cfg = work + "/model.yaml", floor_cfg = work + "/floor.yaml";
  std::ofstream(cfg) << config(12, 768);
  std::ofstream(floor_cfg) << config(1, 16);
  // GPT-2's parameters: 12 C^2 + 13 C per block (attention, MLP, two layer norms), wte and wpe,
  // and ln_f.
  const double C = 768, params = 12 * (12 * C * C + 13 * C) + (256 + 64) * C + 2 * C;
  struct Variant {
    const char* name;
    int ranks;
    std::string extra;
    double state;  // AdamW float32's bytes per parameter per rank that the stage keeps
  };
  const Variant variants[] = {
      {"data parallel", 2, "", 16},
      {"ZeRO 1", 2, "--set 'deepspeed={\"zero_optimization\": {\"stage\": 1}}'", 4 + 4 + 8 / 2.0},
      {"ZeRO 2 (shard_grad_op)", 2, "--set fsdp=shard_grad_op", 4 + 12 / 2.0},
      {"ZeRO 3 (full_shard)", 2, "--set fsdp=full_shard", 16 / 2.0},
      // The same per-rank work on 4 ranks (2 cores: for memory, not speed): what 1/N buys.
      {"data parallel, 4 ranks", 4, "", 16},
      {"ZeRO 3, 4 ranks", 4, "--set fsdp=full_shard", 16 / 4.0},
  };
  std::vector<std::vector<Sharded>> runs(std::size(variants));
  std::vector<double> floors;
  for (int64_t r = 0; r < rounds; ++r) {
    floors.push_back(run_ranks(self, floor_cfg, work + "/floor", 2, "").peak_mb);
    for (size_t v = 0; v < std::size(variants); ++v)
      runs[v].push_back(run_ranks(self, cfg, work + "/run" + std::to_string(v), variants[v].ranks, variants[v].extra));
  }
  const double floor = hftrain::bench::median(floors);
  std::printf("2 ranks, GPT-2 12 x 768 (%.1f M parameters; AdamW in float32 needs 16 B/param = %.0f MB whole), "
              "%lld steps, median of %lld rounds; process floor %.0f MB per rank\n",
              params / 1e6, 16 * params / 1e6, (long long)steps, (long long)rounds, floor);
  std::printf("%-24s %12s %16s %13s %14s %14s\n", "run", "peak MB/rank", "B/param beyond", "of it, state",
              "samples/s", "vs data par.");
  json summary = {{"bench", "ddp_sharded"}, {"steps", steps}, {"rounds", rounds}, {"params", params},
                  {"floor_mb", floor}};
  double base = 0;
  for (size_t v = 0; v < std::size(variants); ++v) {
    std::vector<double> mb, sps;
    for (const Sharded& s : runs[v]) mb.push_back(s.peak_mb), sps.push_back(s.samples_per_s);
    const double peak = hftrain::bench::median(mb), speed = hftrain::bench::median(sps);
    if (v == 0 || variants[v].ranks != variants[v - 1].ranks) base = speed;  // against data parallel on as many ranks
    const double per_param = (peak - floor) * 1024 * 1024 / params;
    std::printf("%-24s %12.0f %16.1f %13.1f %14.2f %13.2fx\n", variants[v].name, peak, per_param, variants[v].state,
                speed, base > 0 ? speed / base : 0);
    summary[variants[v].name] = {{"ranks", variants[v].ranks},
                                 {"peak_mb_per_rank", peak},
                                 {"bytes_per_param_beyond_floor", per_param},
                                 {"state_bytes_per_param", variants[v].state},
                                 {"samples_per_second", speed},
                                 {"over_data_parallel", base > 0 ? speed / base : 0}};
  }
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}

}  // namespace

using hftrain::bench::median;

int main(int argc, char** argv) {
  if (argc > 3 && !std::strcmp(argv[1], "--peak-rss") && !std::strcmp(argv[3], "--"))
    return peak_rss_wrapper(argv[2], argv + 4);
  int64_t steps = 20, rounds = 3;
  bool memory = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--memory")) memory = true;
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoll(argv[++i]);
  }
  if (memory) {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return 1;
    self[n] = 0;
    return memory_bench(self, steps, rounds);
  }
  const std::string work = "/tmp/hftrain_bench_ddp";
  std::filesystem::create_directories(work);
  const Size sizes[] = {{"tiny", 2, 64, 2, 64, 8}, {"small", 4, 256, 4, 256, 8}};
  json summary = {{"bench", "ddp"}, {"steps", steps}, {"rounds", rounds}};
  std::printf("train samples/s, %lld steps per run, median of %lld rounds\n", (long long)steps, (long long)rounds);
  std::printf("%-6s %14s %14s %14s %11s %16s\n", "model", "1 rank, 1 th", "2 ranks", "1 rank, all",
              "efficiency", "2 ranks / 1 all");
  for (const Size& s : sizes) {
    const std::string cfg = work + "/" + s.name + ".yaml";
    std::ofstream(cfg) << config(s, steps);
    std::vector<double> one, two, wide;
    for (int64_t r = 0; r < rounds; ++r) {
      one.push_back(run(cfg, work + "/one", 1, "OMP_NUM_THREADS=1", s.batch));
      two.push_back(run(cfg, work + "/two", 2, "", s.batch));
      wide.push_back(run(cfg, work + "/wide", 1, "", 2 * s.batch));  // the same global batch
    }
    const double a = median(one), b = median(two), c = median(wide);
    const double efficiency = a > 0 ? b / (2 * a) : 0, vs_wide = c > 0 ? b / c : 0;
    std::printf("%-6s %14.1f %14.1f %14.1f %10.0f%% %15.2fx\n", s.name, a, b, c, efficiency * 100, vs_wide);
    summary[s.name] = {{"one_rank_one_thread", a}, {"two_ranks", b}, {"one_rank_all_cores", c},
                       {"scaling_efficiency", efficiency}, {"two_ranks_over_one_rank_all_cores", vs_wide}};
  }
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
