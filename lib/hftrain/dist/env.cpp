#include "hftrain/dist/env.h"

#include "hftrain/core/error.h"

#include <cstdlib>

namespace hftrain {

namespace {

int64_t integer(const char* name, const std::string& value) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  HFT_CHECK(used == value.size() && !value.empty(), "environment variable {}={} is not an integer", name, value);
  return v;
}

}  // namespace

DistEnv dist_env(const std::function<std::optional<std::string>(const char*)>& getenv) {
  DistEnv e;
  auto read = [&](const char* name, int64_t& out) {
    if (auto v = getenv(name)) {
      out = integer(name, *v);
      return true;
    }
    return false;
  };
  if (getenv("RANK") || getenv("WORLD_SIZE")) {
    e.source = "torchrun";
    HFT_CHECK(read("RANK", e.rank) && read("WORLD_SIZE", e.world_size),
              "RANK and WORLD_SIZE must be set together (a launcher sets both)");
    if (!read("LOCAL_RANK", e.local_rank)) e.local_rank = e.rank;
  } else if (getenv("SLURM_PROCID") && getenv("SLURM_NTASKS")) {
    e.source = "slurm";
    read("SLURM_PROCID", e.rank);
    read("SLURM_NTASKS", e.world_size);
    if (!read("SLURM_LOCALID", e.local_rank)) e.local_rank = e.rank;
  }
  HFT_CHECK(e.world_size >= 1, "the world size must be >= 1, got {} (from {})", e.world_size, e.source);
  HFT_CHECK(e.rank >= 0 && e.rank < e.world_size, "rank {} is outside a world of {} (from {})", e.rank, e.world_size,
            e.source);
  HFT_CHECK(e.local_rank >= 0 && e.local_rank <= e.rank, "local rank {} does not fit rank {} (from {})", e.local_rank,
            e.rank, e.source);
  if (auto a = getenv("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = *a == "True" || *a == "true" || *a == "1";
  read("TORCHELASTIC_RESTART_COUNT", e.restart_count);
  if (auto a = getenv("MASTER_ADDR")) e.master_addr = *a;
  read("MASTER_PORT", e.master_port);
  HFT_CHECK(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT={} is not a TCP port", e.master_port);
  if (e.distributed())
    HFT_CHECK(getenv("MASTER_ADDR") && getenv("MASTER_PORT"),
              "a run of {} processes needs MASTER_ADDR and MASTER_PORT (torchrun and scripts/launch set them)",
              e.world_size);
  return e;
}

DistEnv dist_env_from_process() {
  return dist_env([](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

}  // namespace hftrain
