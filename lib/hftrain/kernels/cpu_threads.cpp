#include "hftrain/kernels/cpu_threads.h"

#include "hftrain/core/torch_compat.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace hftrain {

namespace {

thread_local bool t_inside = false;  // this thread is running a chunk

// Workers that sleep between calls; the calling thread works beside them. Never destroyed:
// at exit the workers are blocked on the condition variable.
class Pool {
 public:
  explicit Pool(int threads) : pid_(::getpid()), workers_(static_cast<size_t>(threads - 1)) {
    for (size_t i = 0; i < workers_; ++i) std::thread([this] { loop(); }).detach();
  }
  pid_t pid() const { return pid_; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      grain_ = grain;
      next_.store(0);
      failed_.store(false);
      error_ = nullptr;
      busy_ = workers_;
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [&] { return busy_ == 0; });
      fn_ = nullptr;
      error = error_;
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  void work() {
    t_inside = true;
    for (int64_t b; (b = next_.fetch_add(grain_)) < n_;) {
      if (failed_.load(std::memory_order_relaxed)) continue;  // skip the rest after a throw
      try {
        (*fn_)(b, std::min(b + grain_, n_));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true);
      }
    }
    t_inside = false;
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  const pid_t pid_;
  const size_t workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  size_t busy_ = 0;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

std::mutex g_call;       // one call at a time uses the pool; others run inline
Pool* g_pool = nullptr;  // made on first use, and again in a forked child (whose workers are gone)

}  // namespace

int cpu_threads() { return compat::process_cores(); }

void cpu_parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  grain = std::max<int64_t>(grain, 1);
  const int threads = cpu_threads();
  std::unique_lock<std::mutex> call(g_call, std::defer_lock);
  if (n <= 0) return;
  if (threads <= 1 || n <= grain || t_inside || !call.try_lock()) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(b + grain, n));
    return;
  }
  if (!g_pool || g_pool->pid() != ::getpid()) g_pool = new Pool(threads);
  g_pool->run(n, grain, fn);
}

}  // namespace hftrain
