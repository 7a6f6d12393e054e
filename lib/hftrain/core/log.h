// Warnings on stderr, printed by a single process or by rank 0 of a data parallel run:
// replicas stay quiet (HF's log_level_replica), so a warning appears once per run.
#pragma once

#include <fmt/format.h>

#include <string>

namespace hftrain {

// True for ranks other than 0 of a launched run (RANK, or Slurm's SLURM_PROCID), read from
// the environment so that it holds before the process group exists.
bool process_is_replica();

void warn_line(const std::string& message);  // "hftrain: warning: <message>" unless a replica

template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  warn_line(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace hftrain
