#include "hftrain/train/preemption.h"

#include <unistd.h>

#include <csignal>

namespace hftrain {

namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int sig) {
  g_signal = sig;
  std::signal(sig, SIG_DFL);  // a second signal ends the process at once
  // Acknowledged at once (write(2) is async-signal-safe): what happens now may take a while.
  static const char kMessage[] =
      "\nhftrain: stopping: training stops after the current step with a checkpoint (nothing is written before "
      "training starts); send the signal again to stop at once\n";
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}
}  // namespace

void preemption_install() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
}

int preemption_signal() { return g_signal; }

}  // namespace hftrain
