#include "hftrain/train/rng_state.h"

#include "hftrain/core/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Dict.h>

#include <mutex>

namespace hftrain {

c10::IValue rng_state_capture() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("cpu", gen.get_state());
  return d;
}

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

}  // namespace hftrain
