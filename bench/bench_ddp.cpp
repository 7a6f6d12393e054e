// Data parallel scaling on the CPU: `hftrain train` as 2 ranks (scripts/launch, Gloo, the
// cores split between them by hftrain's default) against 1 rank on one thread
// (OMP_NUM_THREADS=1: the per-process baseline) and against 1 rank on every core with the
// global batch (what the same cores do without data parallelism). Runs are back to back,
// three rounds, medians of train_samples_per_second.
//   build/bench_ddp [--steps N] [--rounds R]
// Scaling efficiency = samples/s on 2 ranks / (2 x samples/s on 1 rank, same threads each).
#include "bench_util.h"

#include <nlohmann/json.hpp>
#include <fmt/format.h>

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

}  // namespace

using hftrain::bench::median;

int main(int argc, char** argv) {
  int64_t steps = 20, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoll(argv[i + 1]);
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
