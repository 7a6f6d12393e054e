#include "hftrain/train/rng_state.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <torch/cuda.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <vector>

namespace hftrain {

namespace {

// MT19937 seeding, from Matsumoto and Nishimura's reference code (mt19937ar.c), which both
// CPython's _randommodule.c and NumPy's mt19937.c follow.
constexpr int kMtWords = 624;
using MtState = std::array<uint32_t, kMtWords>;

MtState mt_init_genrand(uint32_t s) {
  MtState mt;
  mt[0] = s;
  for (uint32_t i = 1; i < kMtWords; ++i) mt[i] = 1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i;
  return mt;
}

MtState mt_init_by_array(const std::vector<uint32_t>& key) {
  MtState mt = mt_init_genrand(19650218u);
  uint32_t i = 1, j = 0;
  for (size_t k = std::max<size_t>(kMtWords, key.size()); k > 0; --k) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + j;
    if (++i >= kMtWords) mt[0] = mt[kMtWords - 1], i = 1;
    if (++j >= key.size()) j = 0;
  }
  for (size_t k = kMtWords - 1; k > 0; --k) {
    mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - i;
    if (++i >= kMtWords) mt[0] = mt[kMtWords - 1], i = 1;
  }
  mt[0] = 0x80000000u;
  return mt;
}

}  // namespace

c10::IValue python_random_state(int64_t seed) {
  // random.seed(n) keys init_by_array with the 32-bit words of |n|, least significant first.
  uint64_t n = seed < 0 ? 0 - static_cast<uint64_t>(seed) : static_cast<uint64_t>(seed);
  std::vector<uint32_t> key;
  do {
    key.push_back(static_cast<uint32_t>(n));
    n >>= 32;
  } while (n != 0);
  const MtState mt = mt_init_by_array(key);
  std::vector<c10::IValue> words;
  for (uint32_t w : mt) words.emplace_back(static_cast<int64_t>(w));
  words.emplace_back(static_cast<int64_t>(kMtWords));  // the index: the next draw regenerates
  return c10::ivalue::Tuple::create({int64_t(3), c10::ivalue::Tuple::create(std::move(words)), c10::IValue()});
}

c10::IValue numpy_random_state(int64_t seed) {
  const MtState mt = mt_init_genrand(static_cast<uint32_t>(seed));
  c10::impl::GenericList key(c10::IntType::get());
  for (uint32_t w : mt) key.push_back(static_cast<int64_t>(w));
  return c10::ivalue::Tuple::create({std::string("MT19937"), key, int64_t(kMtWords), int64_t(0), 0.0});
}

c10::IValue rng_state_dict(const at::Tensor& cpu, const c10::IValue& cuda, int64_t seed) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("python", python_random_state(seed));
  d.insert("numpy", numpy_random_state(seed));
  d.insert("cpu", cpu);
  if (!cuda.isNone() && !(cuda.isTensor() && !cuda.toTensor().defined())) d.insert("cuda", cuda);
  return d;
}

c10::IValue rng_state_capture(c10::Device device, int64_t seed) {
  c10::IValue cuda;
  if (device.is_cuda()) {
    c10::List<at::Tensor> all;
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i)
      all.push_back(generator_state(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i))));
    cuda = all;
  }
  return rng_state_dict(generator_state(c10::Device(c10::kCPU)), cuda, seed);
}

namespace {

void restore_one(c10::Device device, const c10::IValue& v, const std::string& where, const char* key) {
  HFT_CHECK(v.isTensor() && v.toTensor().scalar_type() == at::kByte, "{}: \"{}\" must be a uint8 tensor", where, key);
  try {
    set_generator_state(device, v.toTensor());
  } catch (const c10::Error& e) {
    fail("{}: invalid {} generator state: {}", where, key, e.what_without_backtrace());
  }
}

}  // namespace

void rng_state_restore(const c10::IValue& state, const std::string& where, c10::Device device) {
  HFT_CHECK(state.isGenericDict() && state.toGenericDict().contains("cpu"), "{}: expected a dict with key \"cpu\"",
            where);
  const auto d = state.toGenericDict();
  restore_one(c10::Device(c10::kCPU), d.at("cpu"), where, "cpu");
  // A CPU run leaves the GPU states alone, as HF does without CUDA.
  if (!device.is_cuda() || !d.contains("cuda")) return;
  const c10::IValue cuda = d.at("cuda");
  if (cuda.isTensor()) {
    restore_one(device, cuda, where, "cuda");
    return;
  }
  HFT_CHECK(cuda.isList(), "{}: \"cuda\" must be a uint8 tensor or a list of them", where);
  const auto states = cuda.toList();
  const size_t n = std::min<size_t>(states.size(), torch::cuda::device_count());
  for (size_t i = 0; i < n; ++i) restore_one(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)), states.get(i), where, "cuda");
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

}  // namespace hftrain
