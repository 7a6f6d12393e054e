// skip_memory_metrics: false — transformers' TrainerMemoryTracker on the process's resident
// memory: for each stage (init, train, eval, test) the RSS change from its start to its end
// (<stage>_mem_cpu_alloc_delta) and how far the peak rose above the end
// (<stage>_mem_cpu_peaked_delta), in bytes; the init stage's numbers, and the RSS before it
// (before_init_mem_cpu), go into the first stage reported after it. A stage started inside
// another (an evaluation during training) is not tracked, as in HF. The peak is the kernel's
// own high-water mark (VmHWM), reset at each stage's start, rather than HF's sampling thread.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>

namespace hftrain {

class MemoryTracker {
 public:
  explicit MemoryTracker(bool enabled) : enabled_(enabled) {}
  void start(const std::string& stage);
  // Ends `stage` (if it is the one tracked) and adds its metrics to `metrics`, when given.
  void stop(const std::string& stage, nlohmann::json* metrics = nullptr);

 private:
  struct Reading {
    int64_t begin = 0, end = 0, alloc = 0, peaked = 0;
  };
  bool enabled_;
  std::optional<std::string> current_;
  int64_t begin_ = 0;
  std::map<std::string, Reading> done_;
  bool init_reported_ = false;
};

// The process's resident set now and its high-water mark, in bytes (0 where /proc lacks them).
int64_t resident_bytes();
int64_t resident_peak_bytes();

}  // namespace hftrain
