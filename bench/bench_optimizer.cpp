// Optimizer step time: hftrain's AdamW (torch's foreach arithmetic, no host sync) beside
// Python torch's torch.optim.AdamW(foreach=True) on the same parameter set, in one run.
//   build/bench_optimizer [--model gpt2|demo] [--steps N]
// gpt2: GPT-2 124M's parameter shapes (HF's decay / no-decay groups); demo: the built-in
// default model. Python is Debian's /usr/bin/python3 with python3-torch (same ATen kernels).
#include "hftrain/core/torch_compat.h"
#include "hftrain/models/gpt2.h"
#include "hftrain/optim/adamw.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  std::string model = "gpt2";
  int steps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
  }
  hftrain::compat::configure_host();
  hftrain::Gpt2Config c;  // GPT-2 124M
  if (model == "demo") c.vocab_size = 256, c.n_positions = 128, c.n_embd = 128, c.n_layer = 2, c.n_head = 4;
  at::manual_seed(0);
  hftrain::Gpt2LMHeadModel m(c);
  hftrain::ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = 1e-4;
  decay.weight_decay = 0.01;
  nlohmann::json shapes = nlohmann::json::array();
  int64_t numel = 0;
  for (const auto& p : m.named_parameters()) {
    const bool nd = m.is_no_decay(p.key());
    (nd ? no_decay : decay).params.push_back(p.value());
    p.value().mutable_grad() = at::randn_like(p.value()).mul_(1e-3);
    shapes.push_back({{"shape", p.value().sizes().vec()}, {"no_decay", nd}});
    numel += p.value().numel();
  }
  hftrain::AdamW opt({decay, no_decay}, {});
  opt.step();  // allocate the state outside the timing
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) opt.step();
  const double ours = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;

  const std::string shapes_path = "/tmp/hftrain_bench_optimizer_shapes.json";
  std::ofstream(shapes_path) << shapes.dump();
  const std::string script = R"PY(
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
shapes = json.load(open(sys.argv[1]))
ps = [torch.zeros(s["shape"], requires_grad=True) for s in shapes]
for p in ps: p.grad = torch.randn_like(p) * 1e-3
groups = [{"params": [p for p, s in zip(ps, shapes) if not s["no_decay"]], "weight_decay": 0.01},
          {"params": [p for p, s in zip(ps, shapes) if s["no_decay"]], "weight_decay": 0.0}]
opt = torch.optim.AdamW(groups, lr=1e-4, foreach=True)
opt.step()
n = int(sys.argv[3]); t0 = time.perf_counter()
for _ in range(n): opt.step()
print(json.dumps({"seconds_per_step": (time.perf_counter() - t0) / n, "torch": torch.__version__}))
)PY";
  const std::string script_path = "/tmp/hftrain_bench_optimizer.py";
  std::ofstream(script_path) << script;
  const std::string cmd = "/usr/bin/python3 " + script_path + " " + shapes_path + " " +
                          std::to_string(at::get_num_threads()) + " " + std::to_string(steps);
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  const int rc = p ? pclose(p) : -1;
  double py = NAN;
  std::string torch_version = "?";
  if (rc == 0) {
    auto j = nlohmann::json::parse(out);
    py = j["seconds_per_step"].get<double>();
    torch_version = j["torch"].get<std::string>();
  }
  std::printf("optimizer step, AdamW, %s parameters (%lld), %d threads, %d steps\n", model.c_str(),
              static_cast<long long>(numel), at::get_num_threads(), steps);
  std::printf("  %-38s %10.2f ms\n", "hftrain AdamW", ours * 1e3);
  std::printf("  %-38s %10.2f ms\n", ("python torch " + torch_version + " AdamW(foreach=True)").c_str(), py * 1e3);
  std::printf("  %-38s %10.2fx\n", "python / hftrain", py / ours);
  nlohmann::json summary{{"bench", "optimizer_step"},      {"model", model},
                         {"parameters", numel},             {"threads", at::get_num_threads()},
                         {"hftrain_ms", ours * 1e3},        {"python_foreach_ms", py * 1e3},
                         {"python_over_hftrain", py / ours}};
  std::printf("%s\n", summary.dump().c_str());
  return rc == 0 ? 0 : 1;
}
