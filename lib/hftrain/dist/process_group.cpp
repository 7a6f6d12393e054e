#include "hftrain/dist/process_group.h"

#include "hftrain/core/error.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace hftrain {

namespace {

void wait(const c10::intrusive_ptr<c10d::Work>& work, const DistEnv& env, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail_runtime("rank {}: {} failed (another rank stopped, or ddp_timeout passed): {}", env.rank, what, e.what());
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout) : env_(env), timeout_(timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.master_port);
  opts.isServer = env.rank == 0;
  opts.numWorkers = static_cast<size_t>(env.world_size);
  opts.timeout = timeout;
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
    pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(env.rank),
                                                      static_cast<int>(env.world_size), options);
  } catch (const std::exception& e) {
    fail_runtime("rank {}: cannot join the process group at {}:{} within {} s: {}", env.rank, env.master_addr,
                 env.master_port, timeout.count() / 1000, e.what());
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int64_t root) {
  c10d::BroadcastOptions o;
  o.rootRank = static_cast<int>(root);
  for (at::Tensor& t : tensors) {
    std::vector<at::Tensor> one{t};
    wait(pg_->broadcast(one, o), env_, "broadcast");
  }
}

void ProcessGroup::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  for (at::Tensor& t : tensors) {
    std::vector<at::Tensor> one{t};
    wait(pg_->allreduce(one), env_, "all-reduce");
  }
}

void ProcessGroup::barrier() { wait(pg_->barrier(), env_, "barrier"); }

}  // namespace hftrain
