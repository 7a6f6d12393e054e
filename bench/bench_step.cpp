// The CPU training step against this machine's ceiling.
//  1. The ceiling: sustained float32 (and bfloat16) matrix-multiply FLOP/s through the BLAS
//     LibTorch uses, with hftrain's thread layout, on square sizes and on the step's own shapes.
//  2. The step: whole optimizer steps of the Trainer, its model FLOPs (6 N tokens for the
//     matmul weights, with the head, + 12 L d T tokens for attention, as PaLM's appendix counts
//     them) as a share of the ceiling, and the process's peak memory, beside the same step in
//     Python PyTorch (bench/python_loop.py) run back to back.
//  3. Where the step's time goes: LibTorch's profiler over a few steps, self time per operator.
//  4. Each fusion (config `fused:`): the step with all of them, with none, and with each one
//     off, paired within rounds, so that each one's share of the gain shows.
//  5. bf16 autocast (`bf16: true`) against the float32 step, on the small model.
//   build/bench_step [--steps N] [--rounds R] [--real]
// --real adds SmolLM2-360M's architecture at 1 x 512 tokens (random weights; minutes a step
// set). Every step measurement runs in a fresh child process, so its peak memory is its own.
#include "bench_util.h"
#include "hftrain/builtins.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/fusions.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstring>
#include <fstream>
#include <map>

using namespace hftrain;
using json = nlohmann::json;
using bench::Clock;
using bench::median;

namespace {

constexpr int kWarmup = 3;

// ---- 1. The matmul ceiling -----------------------------------------------------------------

// FLOP/s of C = A B, (m,k) x (k,n), in dtype t: the median of repeated calls over `seconds`.
double gemm_flops(int64_t m, int64_t k, int64_t n, at::ScalarType t, double seconds) {
  const at::Tensor a = at::randn({m, k}).to(t), b = at::randn({k, n}).to(t);
  at::Tensor c = at::empty({m, n}, a.options());
  at::mm_out(c, a, b);  // warm-up: packing buffers, threads
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    at::mm_out(c, a, b);
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(m * k * n) / median(times);
}

// ---- 2. and 3. The step, in a child process --------------------------------------------------

struct StepCase {
  std::string name;
  json model;  // ModelOptions: type, config
  int64_t batch, seq;
};

StepCase small_case() {
  return {"small",
          {{"type", "gpt2"},
           {"config", {{"vocab_size", 256}, {"n_positions", 256}, {"n_embd", 256}, {"n_layer", 4}, {"n_head", 4},
                       {"resid_pdrop", 0.0}, {"embd_pdrop", 0.0}, {"attn_pdrop", 0.0}}}},
          8, 256};
}

StepCase real_case() {
  const bench::RealCase& r = bench::real_cases()[0];
  const json config = json::parse(r.config);
  return {r.name, {{"type", config["model_type"]}, {"config", config}}, r.batch, r.seq};
}

// `overrides`: config keys set over the case's (fused, bf16).
Config step_config(const StepCase& s, int64_t steps, const json& overrides, const std::string& out) {
  ConfigSource src;
  config_merge_text(src,
                    bench::step_config_yaml(out, steps, s.batch, s.model.dump(), s.seq,
                                            std::max<int64_t>(2000000, s.batch * s.seq * (steps + 4))),
                    "bench");
  config_merge_json(src, overrides, "bench");
  return config_resolve(src);
}

// Model FLOPs per token of a training step: 6 per matmul weight (the head counted once, tied
// or not; embedding lookups are free) + 12 L d T for the attention scores and their use.
double flops_per_token(Model& model, int64_t seq) {
  const json c = model.hf_config();
  const auto get = [&](std::initializer_list<const char*> keys) -> int64_t {
    for (const char* k : keys)
      if (c.contains(k) && c[k].is_number_integer()) return c[k].get<int64_t>();
    return 0;
  };
  const int64_t layers = get({"n_layer", "num_hidden_layers"}), width = get({"n_embd", "hidden_size"}),
                heads = get({"n_head", "num_attention_heads"}), vocab = get({"vocab_size"});
  const int64_t head_dim = c.contains("head_dim") && c["head_dim"].is_number_integer() ? c["head_dim"].get<int64_t>()
                                                                                       : width / heads;
  const std::vector<std::string> embeddings = model.embedding_parameter_names();
  double n = 0;
  bool head = false;
  for (const auto& p : model.named_parameters()) {
    if (p.value().dim() != 2 || std::find(embeddings.begin(), embeddings.end(), p.key()) != embeddings.end()) continue;
    n += static_cast<double>(p.value().numel());
    head = head || p.key() == "lm_head.weight";
  }
  if (!head) n += static_cast<double>(vocab * width);  // tied: the embedding is the head too
  return 6.0 * n + 12.0 * static_cast<double>(layers * heads * head_dim * seq);
}

// Self time per operator (microseconds) and calls over the profiled events: each range's time
// less its children's, on each thread.
struct OpTime {
  double us = 0;
  int64_t calls = 0;
};
std::map<std::string, OpTime> self_times(const torch::autograd::profiler::thread_event_lists& lists) {
  std::map<std::string, OpTime> self;
  for (const auto& events : lists) {
    struct Open {
      const torch::autograd::profiler::LegacyEvent* event;
      double children;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kindStr() == "push") {
        stack.push_back({&e, 0.0});
      } else if (e.kindStr() == "pop" && !stack.empty()) {
        const Open o = stack.back();
        stack.pop_back();
        const double elapsed = o.event->cpuElapsedUs(e);
        OpTime& t = self[o.event->name()];
        t.us += elapsed - o.children;
        ++t.calls;
        if (!stack.empty()) stack.back().children += elapsed;
      }
    }
  }
  return self;
}

torch::profiler::impl::ProfilerConfig cpu_profiler() {
  return torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU);
}

// The profiler's own cost per recorded range (microseconds): many tiny additions timed with it
// and without. Each operator's self time is reported less this cost per call, so that the
// many small operators are not inflated against the few large ones.
double profiler_cost_per_range() {
  const at::Tensor x = at::ones({4}), y = at::ones({4});
  const auto time = [&] {
    const auto t0 = Clock::now();
    for (int i = 0; i < 20000; ++i) (void)at::add(x, y);
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  };
  time();
  const double plain = time();
  torch::autograd::profiler::enableProfilerLegacy(cpu_profiler());
  const double profiled = time();
  int64_t ranges = 0;
  for (const auto& [name, t] : self_times(torch::autograd::profiler::disableProfilerLegacy())) ranges += t.calls;
  return ranges ? std::max(0.0, profiled - plain) / static_cast<double>(ranges) : 0.0;
}

// Profiles the optimizer steps after the warm-up.
class StepProfiler : public Callback {
 public:
  explicit StepProfiler(std::map<std::string, OpTime>* out) : out_(out) {}
  std::string name() const override { return "StepProfiler"; }
  void on_step_begin(const Args&, State& s, Control&) override {
    if (s.global_step == kWarmup) torch::autograd::profiler::enableProfilerLegacy(cpu_profiler());
  }
  void on_train_end(const Args&, State&, Control&) override {
    *out_ = self_times(torch::autograd::profiler::disableProfilerLegacy());
  }

 private:
  std::map<std::string, OpTime>* out_;
};

// In the child: the Trainer's `steps` optimizer steps; prints the median step time after the
// warm-up, the model FLOPs per step and, when profiling, the self time per operator per step.
int child(const StepCase& s, const json& overrides, int64_t steps, bool profile) {
  register_builtins();
  compat::configure_host();
  const std::string out = "/tmp/hftrain_bench_step_" + s.name;
  const Config c = step_config(s, steps, overrides, out);
  std::unique_ptr<Trainer> trainer = bench::make_trainer(c, out);
  std::vector<double> times;
  std::map<std::string, OpTime> ops;
  const double cost = profile ? profiler_cost_per_range() : 0.0;
  trainer->callbacks().add(std::make_unique<bench::StepTimer>(&times));
  if (profile) trainer->callbacks().add(std::make_unique<StepProfiler>(&ops));
  const double flops = flops_per_token(trainer->model(), s.seq) * static_cast<double>(s.batch * s.seq);
  // The ceiling again, in this process, just before its steps: this shared machine's speed
  // drifts, and a share is fair only against a ceiling measured at the same time.
  const double ceiling = gemm_flops(2048, 2048, 2048, at::kFloat, 1.0);
  trainer->train(nullptr);
  json r = {{"ms", bench::median_after(times, kWarmup) * 1e3}, {"flops", flops}, {"ceiling", ceiling}};
  const double profiled = static_cast<double>(steps - kWarmup);
  // Per step, less the profiler's own cost per call.
  for (const auto& [name, t] : ops)
    r["ops"][name] = std::max(0.0, t.us - cost * static_cast<double>(t.calls)) / 1e3 / profiled;
  if (profile) r["profiler_us_per_range"] = cost;
  std::printf("%s\n", r.dump().c_str());
  return 0;
}

bench::ChildResult spawn(const std::string& which, const json& overrides, int64_t steps, bool profile) {
  return bench::run_child(
      {"/proc/self/exe", "--child", which, overrides.dump(), std::to_string(steps), profile ? "profile" : "time"});
}

// The Python PyTorch loop on the same windows (bench/python_loop.py: the small GPT-2 only).
bench::ChildResult python_spawn(const StepCase& s, int64_t steps) {
  const std::string out = "/tmp/hftrain_bench_step_" + s.name;
  const Config c = step_config(s, steps, json::object(), out);
  auto tok = tokenizer_registry().create(c.data.tokenizer);
  Datasets ds = datasets_load(c.data, *tok);
  const at::Tensor all = ds.train->collate(at::arange(ds.train->size(), at::kLong)).at("input_ids").contiguous();
  std::ofstream(out + ".tokens", std::ios::binary)
      .write(reinterpret_cast<const char*>(all.data_ptr<int64_t>()), all.numel() * 8);
  const json& m = s.model["config"];
  return bench::run_child({"/usr/bin/python3", std::string(HFTRAIN_SOURCE) + "/bench/python_loop.py", out + ".tokens",
                           std::to_string(s.seq), std::to_string(m["n_layer"].get<int64_t>()),
                           std::to_string(m["n_embd"].get<int64_t>()), std::to_string(m["n_head"].get<int64_t>()),
                           std::to_string(s.batch), std::to_string(steps), std::to_string(at::get_num_threads())});
}

// The operators' self times, largest first, as "name ms (share)" rows; matmuls summed apart.
void print_profile(const json& ops, double step_ms, json& summary) {
  std::vector<std::pair<double, std::string>> rows;
  double total = 0, matmul = 0;
  for (const auto& [name, ms] : ops.items()) {
    const double v = ms.get<double>();
    total += v;
    if (name == "aten::mm" || name == "aten::addmm" || name == "aten::bmm" || name == "aten::baddbmm") matmul += v;
    rows.emplace_back(v, name);
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("  profiled step %.1f ms of operator self time (unprofiled step %.1f ms); matmuls (mm, addmm, bmm) "
              "%.1f ms = %.0f%%\n",
              total, step_ms, matmul, 100 * matmul / total);
  for (size_t i = 0; i < std::min<size_t>(rows.size(), 16); ++i)
    std::printf("    %-52s %8.2f ms %5.1f%%\n", rows[i].second.c_str(), rows[i].first, 100 * rows[i].first / total);
  summary["matmul_share_of_profile"] = matmul / total;
  for (size_t i = 0; i < std::min<size_t>(rows.size(), 16); ++i) summary["top_ops_ms"][rows[i].second] = rows[i].first;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::strcmp(argv[1], "--child") == 0)
    return child(std::string(argv[2]) == "small" ? small_case() : real_case(), json::parse(argv[3]),
                 std::atoll(argv[4]), std::string(argv[5]) == "profile");
  int64_t steps = 13, rounds = 3;
  bool real = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--real")) real = true;
  }
  register_builtins();
  compat::configure_host();
  json summary = {{"bench", "step"}, {"steps", steps}, {"rounds", rounds}};

  // 1. The ceiling.
  std::printf("matrix multiply through LibTorch's at::mm (OpenBLAS for float32, its %s kernels), %d LibTorch "
              "thread(s); GFLOP/s, median of calls over 1 s\n", compat::blas_kernels().c_str(), at::get_num_threads());
  summary["blas_kernels"] = compat::blas_kernels();
  double ceiling = 0;
  for (int64_t n : {512, 1024, 2048}) {
    const double f = gemm_flops(n, n, n, at::kFloat, 1.0);
    ceiling = std::max(ceiling, f);
    std::printf("  float32 %5lld^3 %8.1f\n", static_cast<long long>(n), f / 1e9);
    summary["gemm_float32_gflops"][std::to_string(n)] = f / 1e9;
  }
  const double bf16 = gemm_flops(512, 512, 512, at::kBFloat16, 1.0);
  const char* flags[] = {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"};
  std::string have;
  for (const char* f : flags) have += std::string(" ") + f + (compat::cpu_has_flag(f) ? " yes," : " no,");
  std::printf("  bfloat16 512^3 %8.1f (%.2fx float32's 512^3); CPU flags:%s\n", bf16 / 1e9,
              bf16 / (summary["gemm_float32_gflops"]["512"].get<double>() * 1e9), have.c_str());
  summary["gemm_bfloat16_512_gflops"] = bf16 / 1e9;
  summary["ceiling_gflops"] = ceiling / 1e9;
  // The small GPT-2's own matmuls (forward shapes; backward has their transposes), 2048 tokens.
  std::printf("  the small GPT-2's forward shapes, 2048 tokens x width 256:");
  for (auto [k, n] : {std::pair<int64_t, int64_t>{256, 768}, {256, 256}, {256, 1024}, {1024, 256}}) {
    const double f = gemm_flops(2048, k, n, at::kFloat, 0.5);
    std::printf(" %lldx%lld %.1f,", static_cast<long long>(k), static_cast<long long>(n), f / 1e9);
    summary["gemm_small_shapes_gflops"][std::to_string(k) + "x" + std::to_string(n)] = f / 1e9;
  }
  std::printf("\n");

  // 2. The step, fused and not, beside Python; 4. each fusion's share; 5. bf16 autocast.
  const json all_on = {{"fused", true}};
  std::vector<std::pair<std::string, json>> variants = {{"fused", all_on}, {"unfused", {{"fused", false}}}};
  for (const std::string& f : fusion_names()) variants.emplace_back("without " + f, json{{"fused", {{f, false}}}});

  std::vector<StepCase> cases = {small_case()};
  if (real) cases.push_back(real_case());
  for (const StepCase& s : cases) {
    const bool small = s.name == "small";
    const int64_t n = small ? steps : 4;  // a real-size step takes seconds
    std::map<std::string, std::vector<double>> ms, peak, share;  // share: of the child's own ceiling
    std::vector<double> python_over;  // per round: Python's step time / fused hftrain's
    double flops = 0;
    for (int64_t r = 0; r < (small ? rounds : 1); ++r) {
      std::map<std::string, double> round_ms;
      for (size_t k = 0; k < variants.size() + (small ? 1 : 0); ++k) {
        const size_t i = (k + static_cast<size_t>(r)) % (variants.size() + (small ? 1 : 0));  // rotating order
        if (i == variants.size()) {
          const bench::ChildResult p = python_spawn(s, n);
          if (!p.ok) continue;
          ms["python"].push_back(p.out["median_seconds_per_step"].get<double>() * 1e3);
          peak["python"].push_back(p.peak_mb);
          round_ms["python"] = ms["python"].back();
          continue;
        }
        const bench::ChildResult c = spawn(s.name, variants[i].second, n, false);
        if (!c.ok) continue;
        flops = c.out["flops"];
        ms[variants[i].first].push_back(c.out["ms"]);
        peak[variants[i].first].push_back(c.peak_mb);
        share[variants[i].first].push_back(flops / (c.out["ms"].get<double>() / 1e3) / c.out["ceiling"].get<double>());
        round_ms[variants[i].first] = c.out["ms"];
      }
      if (round_ms.count("python") && round_ms.count("fused"))
        python_over.push_back(round_ms["python"] / round_ms["fused"]);
      for (const auto& [name, v] : round_ms)
        if (name != "fused" && name != "python" && round_ms.count("fused"))
          summary[s.name]["paired_over_fused"][name].push_back(v / round_ms["fused"]);
    }
    std::printf("\n%s (%s, batch %lld x %lld tokens): %.1f GFLOP per step; per step, median of %lld steps after %d "
                "warm-up, %lld round(s)\n",
                s.name.c_str(), s.model["type"].get<std::string>().c_str(), static_cast<long long>(s.batch),
                static_cast<long long>(s.seq), flops / 1e9, static_cast<long long>(n - kWarmup), kWarmup,
                static_cast<long long>(small ? rounds : 1));
    std::printf("  %-24s %10s %12s %14s %12s   (of ceiling: against the float32 2048^3 rate measured in the same "
                "process just before)\n", "run", "step ms", "GFLOP/s", "of ceiling", "peak MB");
    for (const auto& [name, v] : ms) {
      const double m = median(v), p = median(peak[name]);
      const double rate = flops / (m / 1e3);  // FLOP/s
      // Python's share is against the ceiling measured at the start.
      const double of = share.count(name) ? median(share[name]) : rate / ceiling;
      std::printf("  %-24s %10.1f %12.1f %13.1f%% %12.0f\n", name.c_str(), m, rate / 1e9, 100 * of, p);
      summary[s.name][name] = {{"ms", m}, {"share_of_ceiling", of}, {"peak_mb", p}};
    }
    if (!python_over.empty())
      std::printf("  Python's step / hftrain's (paired by round): %.2fx; peak memory hftrain / Python %.2fx\n",
                  median(python_over), median(peak["fused"]) / median(peak["python"]));
    for (const auto& [name, v] : summary[s.name]["paired_over_fused"].items())
      std::printf("  %s / fused (paired): %.3fx\n", name.c_str(), median(v.get<std::vector<double>>()));
    // 5. bf16 autocast on this CPU, once (its matmuls may run far slower than float32's).
    if (small) {
      const bench::ChildResult b = spawn(s.name, {{"fused", true}, {"bf16", true}}, kWarmup + 2, false);
      if (b.ok) {
        std::printf("  bf16 autocast (fused), one run of 2 steps: %.1f ms a step, %.2fx the float32 step; peak %.0f MB\n",
                    b.out["ms"].get<double>(), b.out["ms"].get<double>() / median(ms["fused"]), b.peak_mb);
        summary[s.name]["bf16_autocast"] = {{"ms", b.out["ms"]}, {"peak_mb", b.peak_mb}};
      }
    }
    // 3. The profile, in its own run (the profiler's overhead would distort the timings).
    const bench::ChildResult prof = spawn(s.name, all_on, n, true);
    if (prof.ok && prof.out.contains("ops")) {
      std::printf("  profile (the profiler's own %.1f us per recorded call subtracted):\n",
                  prof.out["profiler_us_per_range"].get<double>());
      print_profile(prof.out["ops"], median(ms["fused"]), summary[s.name]);
    }
  }
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
