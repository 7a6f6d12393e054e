// torch.distributed's engine for hftrain's data parallel runs: a c10d TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT (rank 0 serves it) and a ProcessGroupGloo over it.
#pragma once

#include "hftrain/dist/env.h"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroupGloo;
}

namespace hftrain {

// The backend a run uses: ddp_backend when set, else Gloo, the one the config's validation
// lets through (data parallel ranks train on the CPU).
std::string dist_backend(const std::optional<std::string>& ddp_backend);

// A collective in flight; wait() blocks until it completes (or fails, naming the rank).
class PendingCollective {
 public:
  PendingCollective() = default;
  explicit PendingCollective(std::function<void()> wait) : wait_(std::move(wait)) {}
  void wait() {
    if (wait_) wait_();
    wait_ = nullptr;
  }

 private:
  std::function<void()> wait_;
};

class ProcessGroup {
 public:
  // Waits up to `timeout` (ddp_timeout) for every rank; a rank that does not arrive, or a
  // collective that does not complete in time, is a runtime error naming the rank.
  ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout);
  ~ProcessGroup();

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  int64_t local_rank() const { return env_.local_rank; }

  // In place, CPU tensors. Every rank must issue the same collectives in the same order.
  void broadcast(std::vector<at::Tensor>& tensors, int64_t root);
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  void all_reduce_max(std::vector<at::Tensor>& tensors);
  PendingCollective all_reduce_sum_async(at::Tensor tensor);
  // Every rank's `mine` (same shape and dtype on all ranks), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& mine);
  // The same into `outs` (one per rank, contiguous, `mine`'s shape: views of one flat buffer
  // serve, `mine` may be this rank's), as sharded data parallel gathers a unit's shards into
  // its parameters.
  void all_gather_into(const at::Tensor& mine, std::vector<at::Tensor> outs);
  // Every rank's `mine` on `root` alone (rank order); the other ranks get an empty list.
  std::vector<at::Tensor> gather(const at::Tensor& mine, int64_t root);
  // The sum over ranks lands in `root`'s `tensor` (the others' are left unspecified). Gloo has
  // no reduce-scatter: a shard's gradients are reduced to the rank that owns it.
  PendingCollective reduce_sum_async(at::Tensor tensor, int64_t root);
  void barrier();

  // Scalars summed or maxed over ranks (one collective each call).
  double sum(double local);
  int64_t max(int64_t local);

 private:
  DistEnv env_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};

}  // namespace hftrain
