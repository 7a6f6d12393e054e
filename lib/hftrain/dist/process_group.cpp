#include "hftrain/dist/process_group.h"

#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"

#include <ATen/Functions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
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

std::string dist_backend(const std::optional<std::string>& ddp_backend) {
  return ddp_backend.value_or("gloo");  // the config allows gloo alone (fields_rules.cpp)
}

ProcessGroup::ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout) : env_(env), timeout_(timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.master_port);
  opts.isServer = env.rank == 0 && !env.agent_store;
  opts.numWorkers = static_cast<size_t>(env.world_size);
  opts.timeout = timeout;
  compat::tcp_store_defaults(opts);
  try {
    auto store = c10::make_intrusive<c10d::PrefixStore>(
        "hftrain/" + std::to_string(env.restart_count), c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts));
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

void ProcessGroup::all_reduce_max(std::vector<at::Tensor>& tensors) {
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  for (at::Tensor& t : tensors) {
    std::vector<at::Tensor> one{t};
    wait(pg_->allreduce(one, o), env_, "all-reduce");
  }
}

PendingCollective ProcessGroup::all_reduce_sum_async(at::Tensor tensor) {
  std::vector<at::Tensor> one{std::move(tensor)};
  c10::intrusive_ptr<c10d::Work> work = pg_->allreduce(one);
  return PendingCollective([work, env = env_] { wait(work, env, "gradient all-reduce"); });
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& mine) {
  std::vector<at::Tensor> in{mine.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < env_.world_size; ++r) out[0].push_back(at::empty_like(in[0]));
  wait(pg_->allgather(out, in), env_, "all-gather");
  return out[0];
}

// One broadcast per rank, in place, all in flight at once: Gloo's allgather copies through a
// temporary as large as the result and ran 2-12x slower here than these broadcasts.
void ProcessGroup::all_gather_into(const at::Tensor& mine, std::vector<at::Tensor> outs) {
  at::Tensor& own = outs.at(static_cast<size_t>(env_.rank));
  if (!own.is_same(mine) && own.data_ptr() != mine.data_ptr()) own.copy_(mine);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (int64_t r = 0; r < env_.world_size; ++r) {
    c10d::BroadcastOptions o;
    o.rootRank = static_cast<int>(r);
    std::vector<at::Tensor> one{outs[static_cast<size_t>(r)]};
    works.push_back(pg_->broadcast(one, o));
  }
  for (auto& w : works) wait(w, env_, "all-gather");
}

std::vector<at::Tensor> ProcessGroup::gather(const at::Tensor& mine, int64_t root) {
  std::vector<at::Tensor> in{mine.contiguous()};
  std::vector<std::vector<at::Tensor>> out;
  if (env_.rank == root) {
    out.emplace_back();
    for (int64_t r = 0; r < env_.world_size; ++r) out[0].push_back(at::empty_like(in[0]));
  }
  c10d::GatherOptions o;
  o.rootRank = static_cast<int>(root);
  wait(pg_->gather(out, in, o), env_, "gather");
  return out.empty() ? std::vector<at::Tensor>{} : out[0];
}

PendingCollective ProcessGroup::reduce_sum_async(at::Tensor tensor, int64_t root) {
  std::vector<at::Tensor> one{std::move(tensor)};
  c10d::ReduceOptions o;
  o.rootRank = static_cast<int>(root);
  c10::intrusive_ptr<c10d::Work> work = pg_->reduce(one, o);
  return PendingCollective([work, env = env_] { wait(work, env, "gradient reduce"); });
}

void ProcessGroup::barrier() { wait(pg_->barrier(), env_, "barrier"); }

double ProcessGroup::sum(double local) {
  std::vector<at::Tensor> t{at::full({1}, local, at::kDouble)};
  all_reduce_sum(t);
  return t[0].item<double>();
}

int64_t ProcessGroup::max(int64_t local) {
  std::vector<at::Tensor> t{at::full({1}, local, at::kLong)};
  all_reduce_max(t);
  return t[0].item<int64_t>();
}

}  // namespace hftrain
