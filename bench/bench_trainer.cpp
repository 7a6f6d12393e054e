// hftrain's training step against a bare LibTorch loop (same process, same model, batches,
// optimizer and schedule) and against the same loop in Python PyTorch (Debian's python3-torch,
// the same LibTorch 1.13 kernels; as users run it, and with hftrain's malloc thresholds), for
// a tiny and a small GPT-2; plus time to the first optimizer step beside the process's floor,
// peak memory, host reads per optimizer step, the bare loop again with LibTorch's intra-op
// pool as wide as OpenBLAS's (the thread layout hftrain avoids), and the built-in default with
// glibc's own malloc thresholds (which hftrain replaces).
//   build/bench_trainer [--steps N] [--rounds R]
// Prints a table and a JSON summary. Times are per optimizer step, after 3 warm-up steps.
#include "hftrain/builtins.h"
#include "hftrain/config/config.h"
#include "hftrain/core/host_sync.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/collator.h"
#include "hftrain/data/sampler.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/grad_clip.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/train/trainer.h"
#include "bench_util.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

using namespace hftrain;
using json = nlohmann::json;
using bench::Clock;
using bench::median;
using bench::StepTimer;

namespace {

constexpr int kWarmup = 3;

struct Size {
  const char* name;
  int64_t layers, width, heads, seq, batch;
};

Config make_config(const Size& s, int64_t steps, const std::string& out) {
  const json model = {{"type", "gpt2"},
                      {"config",
                       {{"vocab_size", 256}, {"n_positions", s.seq}, {"n_embd", s.width}, {"n_layer", s.layers},
                        {"n_head", s.heads}, {"resid_pdrop", 0.0}, {"embd_pdrop", 0.0}, {"attn_pdrop", 0.0}}}};
  ConfigSource src;
  config_merge_text(src, bench::step_config_yaml(out, steps, s.batch, model.dump(), s.seq, 2000000), "bench");
  return config_resolve(src);
}

double median_after_warmup(const std::vector<double>& t) { return bench::median_after(t, kWarmup); }

// A command's standard output; ok is false when it could not run or exited non-zero.
std::string capture(const std::string& cmd, bool* ok) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string text;
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) text += buf;
  *ok = p && pclose(p) == 0;
  return text;
}

// The last line of a command's output that is a JSON object (the Python loop's result,
// hftrain's train summary); discarded (is_discarded()) when there is none.
json last_json(const std::string& text) {
  size_t at = text.rfind("\n{");
  at = at == std::string::npos ? 0 : at + 1;
  return json::parse(text.substr(at, text.find('\n', at) - at), nullptr, false);
}

// The same work as the Trainer's step, written as plainly as LibTorch allows.
std::vector<double> bare_loop(const Config& c, const LmDataset& train, int64_t steps) {
  bench::BareSetup b(c, steps);
  BatchSampler sampler = BatchSampler::random(train.size(), c.args.per_device_train_batch_size, false, 42, 0);
  std::vector<double> times;
  for (int64_t s = 0; s < steps; ++s) {
    const auto t0 = Clock::now();
    Batch batch = train.collate(sampler.batch(s % sampler.size()));
    const double n = static_cast<double>(count_label_tokens(batch));
    b.model->forward(batch, n).loss.backward();
    clip_grad_norm(b.params, 1.0);
    b.opt->step();
    b.sched->step();
    b.opt->zero_grad();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return times;
}

struct Result {
  double bare = 0, bare_wide = 0, hftrain = 0, python = NAN, python_kept = NAN,
         python_rss_mb = NAN, syncs_per_step = 0;
};

// One round; `rotate` shifts the order of the three measurements (bare, hftrain, Python) so
// that no loop always runs first or last in a round.
Result run_size(const Size& s, int64_t steps, int rotate) {
  const std::string out = std::string("/tmp/hftrain_bench_trainer_") + s.name;
  Config c = make_config(s, steps, out);
  register_builtins();
  auto tok = tokenizer_registry().create(c.data.tokenizer);
  Result r;
  auto bare = [&] {
    Datasets ds = datasets_load(c.data, *tok);
    r.bare = median_after_warmup(bare_loop(c, *ds.train, steps));
    // The same loop with LibTorch's intra-op pool as wide as the machine beside OpenBLAS's
    // (what LibTorch does when told to use every core): hftrain's default avoids it.
    const int threads = at::get_num_threads();
    at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
    r.bare_wide = median_after_warmup(bare_loop(c, *ds.train, steps));
    at::set_num_threads(threads);
  };
  auto hftrain = [&] {
    std::unique_ptr<Trainer> trainer = bench::make_trainer(c, out);
    std::vector<double> times;
    trainer->callbacks().add(std::make_unique<StepTimer>(&times));
    const int64_t before = host_sync_counter().load();
    trainer->train(nullptr);
    // One log at the last step (loss and grad_norm) and the summary's final read.
    r.syncs_per_step = static_cast<double>(host_sync_counter().load() - before) / static_cast<double>(steps);
    r.hftrain = median_after_warmup(times);
  };
  auto python = [&] {
    // The Python loop reads the same windows, in the same order (randperm seeded 42 + epoch).
    Datasets ds = datasets_load(c.data, *tok);
    at::Tensor all = ds.train->collate(at::arange(ds.train->size(), at::kLong)).at("input_ids").contiguous();
    std::ofstream(out + ".tokens", std::ios::binary)
        .write(reinterpret_cast<const char*>(all.data_ptr<int64_t>()), all.numel() * 8);
    // As Python users run it, and with the malloc thresholds hftrain sets for itself.
    auto run_python = [&](const char* env, double* seconds, double* rss_mb) {
      bool ok = false;
      const json j = last_json(capture(
          fmt::format("{}/usr/bin/python3 {}/bench/python_loop.py {} {} {} {} {} {} {} {}", env, HFTRAIN_SOURCE,
                      out + ".tokens", s.seq, s.layers, s.width, s.heads, s.batch, steps, at::get_num_threads()),
          &ok));
      if (!ok || !j.contains("median_seconds_per_step")) return;
      *seconds = j["median_seconds_per_step"];
      if (rss_mb) *rss_mb = j["peak_rss_mb"];
    };
    run_python("", &r.python, &r.python_rss_mb);
    run_python("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647 ",
               &r.python_kept, nullptr);
  };
  const std::function<void()> measurements[] = {bare, hftrain, python};
  for (int k = 0; k < 3; ++k) measurements[(k + rotate) % 3]();
  return r;
}

double peak_rss_mb(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t steps = 30, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoll(argv[i + 1]);
  }
  compat::configure_host();
  const Size sizes[] = {{"tiny", 2, 64, 2, 64, 8}, {"small", 4, 256, 4, 256, 8}};
  json summary = {{"bench", "trainer"}, {"threads", at::get_num_threads()}, {"steps", steps}};
  std::printf("per optimizer step, %d threads, median of %lld steps after %d warm-up; median of %lld rounds, "
              "the ratios paired within each round\n",
              at::get_num_threads(), static_cast<long long>(steps - kWarmup), kWarmup, static_cast<long long>(rounds));
  std::printf("%-6s %9s %10s %9s %9s %14s %11s %11s %12s\n", "model", "bare ms", "hftrain ms", "overhead",
              "python ms", "python/hftrain", "(kept)/hf", "host reads", "2 pools/bare");
  for (const Size& s : sizes) {
    // Rounds of (bare, hftrain, python) back to back, in rotating order. The machine's speed
    // drifts between rounds, so each ratio is taken within a round, then the median.
    std::vector<Result> rs;
    for (int64_t k = 0; k < rounds; ++k) rs.push_back(run_size(s, steps, static_cast<int>(k % 3)));
    auto median_of = [&](double Result::*field) {
      std::vector<double> v;
      for (const Result& x : rs) v.push_back(x.*field);
      return median(v);
    };
    auto ratio = [&](double Result::*num, double Result::*den) {
      std::vector<double> v;
      for (const Result& x : rs) v.push_back(x.*num / x.*den);
      return median(v);
    };
    Result r = rs.front();
    r.bare = median_of(&Result::bare);
    r.hftrain = median_of(&Result::hftrain);
    r.python = median_of(&Result::python);
    const double overhead = (ratio(&Result::hftrain, &Result::bare) - 1) * 100;
    const double python_ratio = ratio(&Result::python, &Result::hftrain);
    const double kept_ratio = ratio(&Result::python_kept, &Result::hftrain);
    const double wide_ratio = ratio(&Result::bare_wide, &Result::bare);
    std::printf("%-6s %9.2f %10.2f %8.2f%% %9.2f %13.2fx %10.2fx %11.3f %11.2fx\n", s.name, r.bare * 1e3,
                r.hftrain * 1e3, overhead, r.python * 1e3, python_ratio, kept_ratio, r.syncs_per_step, wide_ratio);
    summary[s.name] = {{"bare_ms", r.bare * 1e3},
                       {"hftrain_ms", r.hftrain * 1e3},
                       {"overhead_percent", overhead},
                       {"python_ms", r.python * 1e3},
                       {"python_over_hftrain", python_ratio},
                       {"python_kept_memory_over_hftrain", kept_ratio},
                       {"host_reads_per_step", r.syncs_per_step},
                       {"python_peak_rss_mb", r.python_rss_mb},
                       {"both_pools_wide_over_bare", wide_ratio}};
  }
  summary["hftrain_peak_rss_mb"] = peak_rss_mb(RUSAGE_SELF);

  // Process start to the first optimizer step of the built-in default: the time until
  // hftrain prints step 1's log line (logging_first_step), and until it exits after writing
  // the final model. The floor every process linked to this LibTorch pays before main()
  // (loading and initialising its libraries) is the time until `hftrain --version` prints.
  // Medians of 5.
  const std::string default_run = fmt::format(
      "{}/build/hftrain train --set max_steps=1 --set logging_first_step=true --set eval_strategy=no "
      "--set save_strategy=no --set output_dir=/tmp/hftrain_bench_first_step 2>&1",
      HFTRAIN_SOURCE);
  const std::string version_run = fmt::format("{}/build/hftrain --version 2>&1", HFTRAIN_SOURCE);
  std::vector<double> to_log, to_exit, floor;
  bool failed = false;
  for (int k = 0; k < 5; ++k) {
    for (const std::string* cmd : {&version_run, &default_run}) {
      const char* mark = cmd == &version_run ? "hftrain " : "\"loss\"";
      const auto t0 = Clock::now();
      double seen = NAN;
      FILE* p = popen(cmd->c_str(), "r");
      char buf[4096];
      while (p && fgets(buf, sizeof buf, p))
        if (std::isnan(seen) && std::strstr(buf, mark)) seen = std::chrono::duration<double>(Clock::now() - t0).count();
      failed |= !p || pclose(p) != 0 || std::isnan(seen);
      (cmd == &version_run ? floor : to_log).push_back(seen);
      if (cmd == &default_run) to_exit.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  summary["first_step_seconds"] = median(to_log);
  summary["first_step_exit_seconds"] = median(to_exit);
  summary["process_floor_seconds"] = median(floor);
  summary["first_step_peak_rss_mb"] = peak_rss_mb(RUSAGE_CHILDREN);
  std::printf("built-in default, from process start: step 1 logged %.3f s, exited (final model written) %.3f s; "
              "hftrain --version prints at %.3f s (LibTorch's libraries loading), so %.3f s is hftrain's own%s\n",
              median(to_log), median(to_exit), median(floor), median(to_log) - median(floor),
              failed ? " (a run failed)" : "");
  // The built-in default's training time with hftrain's malloc thresholds against glibc's own
  // (hftrain leaves malloc alone when GLIBC_TUNABLES sets any glibc.malloc tunable;
  // tcache_count=7 is glibc's default value). Paired in 3 rounds, alternating which runs first.
  const std::string malloc_run = fmt::format(
      "{}/build/hftrain train --set max_steps=40 --set eval_strategy=no --set save_strategy=no "
      "--set output_dir=/tmp/hftrain_bench_malloc 2>/dev/null",
      HFTRAIN_SOURCE);
  std::vector<double> kept, glibc_own;
  for (int k = 0; k < 3; ++k) {
    double t[2] = {NAN, NAN};
    for (int i = 0; i < 2; ++i) {
      const int which = (i + k) % 2;
      bool ok = false;
      const json j = last_json(capture((which ? "GLIBC_TUNABLES=glibc.malloc.tcache_count=7 " : "") + malloc_run, &ok));
      if (ok && j.contains("train_runtime")) t[which] = j["train_runtime"];
    }
    kept.push_back(t[0]);
    glibc_own.push_back(t[1] / t[0]);
  }
  summary["default_train_seconds"] = median(kept);
  summary["glibc_malloc_over_kept"] = median(glibc_own);
  std::printf("built-in default, 40 steps: %.2f s with hftrain's malloc thresholds; glibc's own take %.2fx as long\n",
              median(kept), median(glibc_own));
  std::printf("peak resident memory: this process (both C++ loops) %.0f MB, largest child (Python loops, the "
              "first-step run) %.0f MB\n",
              summary["hftrain_peak_rss_mb"].get<double>(), summary["first_step_peak_rss_mb"].get<double>());
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
