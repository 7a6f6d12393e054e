#include "hftrain/core/memory_limit.h"

#include "hftrain/core/error.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

namespace hftrain {

namespace {

// Counts the live bytes of every CPU tensor and refuses those past the cap; the memory itself
// comes from the allocator that was there.
class LimitedAllocator final : public c10::Allocator {
 public:
  LimitedAllocator(c10::Allocator* base, int64_t limit) : base_(base), limit_(limit) {}

  c10::DataPtr allocate(size_t n) const override {
    const auto bytes = static_cast<int64_t>(n);
    if (live_.fetch_add(bytes) + bytes > limit_) {
      live_.fetch_sub(bytes);
      TORCH_CHECK(false, "DefaultCPUAllocator: can't allocate memory: you tried to allocate ", n,
                  " bytes, past HFTRAIN_CPU_MEMORY_LIMIT (", limit_, " bytes, ", live_.load(), " in use)");
    }
    auto* held = new Held{base_->allocate(n), bytes, this};
    void* data = held->inner.get();
    return {data, held, &release, c10::Device(c10::DeviceType::CPU)};
  }

 private:
  struct Held {
    c10::DataPtr inner;
    int64_t bytes;
    const LimitedAllocator* owner;
  };
  static void release(void* p) {
    auto* held = static_cast<Held*>(p);
    held->owner->live_.fetch_sub(held->bytes);
    delete held;  // frees through the base allocator's deleter
  }
  c10::Allocator* base_;
  int64_t limit_;
  mutable std::atomic<int64_t> live_{0};
};

int64_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  const double scale = unit.empty() ? 1 : unit == "K" || unit == "KB" ? 1024.0 : unit == "M" || unit == "MB" ? 1048576.0
                                      : unit == "G" || unit == "GB"   ? 1073741824.0 : -1;
  HFT_CHECK(end != s.c_str() && v > 0 && scale > 0,
            "HFTRAIN_CPU_MEMORY_LIMIT must be a number of bytes with an optional K, M or G, got \"{}\"", s);
  return static_cast<int64_t>(v * scale);
}

}  // namespace

void install_cpu_memory_limit_from_env() {
  const char* v = std::getenv("HFTRAIN_CPU_MEMORY_LIMIT");
  if (!v || !*v) return;
  static LimitedAllocator limited(c10::GetCPUAllocator(), parse_bytes(v));
  c10::SetCPUAllocator(&limited, /*priority=*/100);
}

bool is_out_of_memory(const std::string& m) {
  for (const char* s : {"CUDA out of memory.", "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.",
                        "DefaultCPUAllocator: can't allocate memory"})
    if (m.find(s) != std::string::npos) return true;
  return false;
}

}  // namespace hftrain
