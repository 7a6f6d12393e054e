#include "hftrain/train/memory_tracker.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

namespace hftrain {

namespace {

// A "VmRSS:" / "VmHWM:" line of /proc/self/status, in bytes.
int64_t status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  const std::string prefix = std::string(key) + ":";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
  return 0;
}

// Resets the high-water mark to the current RSS (Linux: 5 in /proc/self/clear_refs).
void reset_peak() {
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

}  // namespace

int64_t resident_bytes() { return status_kb("VmRSS"); }
int64_t resident_peak_bytes() { return status_kb("VmHWM"); }

void MemoryTracker::start(const std::string& stage) {
  if (!enabled_ || current_) return;  // nested: only the outer stage is tracked
  current_ = stage;
  reset_peak();
  begin_ = resident_bytes();
}

void MemoryTracker::stop(const std::string& stage, nlohmann::json* metrics) {
  if (!enabled_ || current_ != stage) return;
  current_.reset();
  Reading r;
  r.begin = begin_;
  r.end = resident_bytes();
  r.alloc = r.end - r.begin;
  r.peaked = std::max<int64_t>(0, std::max(resident_peak_bytes(), r.end) - r.end);
  done_[stage] = r;
  if (!metrics) return;
  std::vector<std::string> stages{stage};
  if (!init_reported_ && done_.count("init")) {
    stages.insert(stages.begin(), "init");
    init_reported_ = true;
  }
  for (const std::string& s : stages) {
    (*metrics)[s + "_mem_cpu_alloc_delta"] = done_[s].alloc;
    (*metrics)[s + "_mem_cpu_peaked_delta"] = done_[s].peaked;
  }
  if (stages.front() == "init") (*metrics)["before_init_mem_cpu"] = done_["init"].begin;
}

}  // namespace hftrain
