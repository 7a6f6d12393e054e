// DistributedDataParallel's gradient reduction: gradients are averaged over the ranks in flat
// buckets, each all-reduced as soon as backward has produced all of its gradients, so that
// communication overlaps the rest of backward.
//
// Buckets are filled from the last parameter to the first (the order backward reaches them):
// the first holds up to 1 MiB, the others up to bucket_cap_mb (DDP's default 25). Buckets are
// launched in index order on every rank, whatever order the hooks fire in, because the ranks
// must issue their collectives in the same order.
#pragma once

#include "hftrain/dist/process_group.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace hftrain {

class GradReducer {
 public:
  // params: the trainable parameters, in the model's order; they must stay the same tensors
  // (weights are loaded into them, not swapped) for the hooks to see their gradients.
  GradReducer(ProcessGroup& pg, std::vector<at::Tensor> params, int64_t bucket_cap_bytes,
              int64_t first_bucket_bytes = int64_t{1} << 20);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Every rank takes `root`'s parameter values (DDP's start-up broadcast).
  void broadcast_parameters(int64_t root);
  // Before a backward: whether it ends a gradient-accumulation window. Only then are the
  // gradients reduced (the others are DDP's no_sync micro-steps).
  void prepare(bool sync);
  // After that backward: waits for every bucket and writes the averaged gradients back. A
  // parameter that got no gradient on this rank counts as zero.
  void finish();

  size_t num_buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;  // of each parameter in buffer
    at::Tensor buffer;
    size_t pending = 0;  // parameters whose gradient has not arrived
    bool launched = false, late = false;
    PendingCollective work;
  };
  void on_gradient(size_t param);
  void launch_in_order();  // launches the ready buckets that follow the last launched one
  void launch(Bucket& b);

  ProcessGroup& pg_;
  std::vector<at::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<char> ready_;
  size_t next_bucket_ = 0;
  bool sync_ = false;
  std::mutex mu_;
  std::vector<std::function<void()>> unhook_;  // each removes one gradient-accumulator hook
};

}  // namespace hftrain
