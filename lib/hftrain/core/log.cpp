#include "hftrain/core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace hftrain {

bool process_is_replica() {
  const char* rank = std::getenv("RANK");
  if (!rank && std::getenv("SLURM_NTASKS")) rank = std::getenv("SLURM_PROCID");
  // dist_env() validates the value; anything but "0" (or unset) is some other rank.
  return rank && *rank && std::strcmp(rank, "0") != 0;
}

void warn_line(const std::string& message) {
  if (!process_is_replica()) std::fprintf(stderr, "hftrain: warning: %s\n", message.c_str());
}

}  // namespace hftrain
