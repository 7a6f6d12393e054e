#include "hftrain/train/preemption.h"

#include <csignal>

namespace hftrain {

namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int sig) {
  g_signal = sig;
  std::signal(sig, SIG_DFL);  // a second signal ends the process at once
}
}  // namespace

void preemption_install() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
}

int preemption_signal() { return g_signal; }

}  // namespace hftrain
