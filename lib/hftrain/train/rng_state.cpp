#include "hftrain/train/rng_state.h"

#include "hftrain/core/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Dict.h>

#include <filesystem>
#include <mutex>
#include <regex>

namespace hftrain {

at::Tensor rng_state_cpu() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

c10::IValue rng_state_from_cpu(const at::Tensor& cpu) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("cpu", cpu);
  return d;
}

c10::IValue rng_state_capture() { return rng_state_from_cpu(rng_state_cpu()); }

void rng_state_restore(const c10::IValue& state, const std::string& where) {
  HFT_CHECK(state.isGenericDict() && state.toGenericDict().contains("cpu"), "{}: expected a dict with key \"cpu\"",
            where);
  c10::IValue cpu = state.toGenericDict().at("cpu");
  HFT_CHECK(cpu.isTensor() && cpu.toTensor().scalar_type() == at::kByte, "{}: \"cpu\" must be a uint8 tensor", where);
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(cpu.toTensor());
  } catch (const c10::Error& e) {
    fail("{}: invalid CPU generator state: {}", where, e.what_without_backtrace());
  }
}

std::string rng_state_file(int64_t rank, int64_t world_size) {
  return world_size > 1 ? "rng_state_" + std::to_string(rank) + ".pth" : "rng_state.pth";
}

int64_t rng_state_world_size(const std::string& dir) {
  namespace fs = std::filesystem;
  static const std::regex kRankFile("rng_state_([0-9]+)\\.pth");
  int64_t ranks = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, kRankFile)) ranks = std::max<int64_t>(ranks, std::stoll(m[1]) + 1);
  }
  if (ranks > 0) return ranks;
  return fs::is_regular_file(fs::path(dir) / "rng_state.pth", ec) ? 1 : 0;
}

void rng_state_check_world_size(const std::string& dir, int64_t world_size) {
  const int64_t saved = rng_state_world_size(dir);
  if (saved == 0) return;  // no RNG files: reading them names what is missing
  HFT_CHECK(saved == world_size,
            "{} was saved by a run of {} process(es) and this run has {}: resume needs the same world size "
            "(the data order and each rank's RNG state depend on it)",
            dir, saved, world_size);
}

}  // namespace hftrain
