// Who this process is in a data parallel run, from the launcher's variables: torchrun's
// RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; where those are absent, Slurm's
// SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS (with MASTER_ADDR/PORT from the job script).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace hftrain {

struct DistEnv {
  int64_t rank = 0, local_rank = 0, world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string source = "none";  // "torchrun", "slurm" or "none" (a single process)
  // torchrun's agent already serves the store at MASTER_ADDR:MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True): every rank joins it as a client. Keys are prefixed
  // with the restart count, so that a restarted group does not read the last one's.
  bool agent_store = false;
  int64_t restart_count = 0;
  bool distributed() const { return world_size > 1; }
};

// getenv stands in for the environment in tests. Inconsistent values (a rank outside the
// world, a non-numeric variable) are user errors naming the variable and its value.
DistEnv dist_env(const std::function<std::optional<std::string>(const char*)>& getenv);
DistEnv dist_env_from_process();

}  // namespace hftrain
