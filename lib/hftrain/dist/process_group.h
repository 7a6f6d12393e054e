// torch.distributed's engine for hftrain's data parallel runs: a c10d TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT (rank 0 serves it) and a ProcessGroupGloo over it.
#pragma once

#include "hftrain/dist/env.h"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <vector>

namespace c10d {
class ProcessGroupGloo;
}

namespace hftrain {

class ProcessGroup {
 public:
  // Waits up to `timeout` (ddp_timeout) for every rank; a rank that does not arrive, or a
  // collective that does not complete in time, is a runtime error naming the rank.
  ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout);
  ~ProcessGroup();

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }

  void broadcast(std::vector<at::Tensor>& tensors, int64_t root);  // in place, CPU tensors
  void all_reduce_sum(std::vector<at::Tensor>& tensors);           // in place, CPU tensors
  void barrier();

 private:
  DistEnv env_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};

}  // namespace hftrain
