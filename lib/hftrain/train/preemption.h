// Preemption: SIGTERM or SIGINT asks the trainer to finish the current optimizer step, save a
// checkpoint and stop; the process then exits with 128 + signal. A second signal kills as usual.
#pragma once

#include <stdexcept>
#include <string>

namespace hftrain {

void preemption_install();  // installs the handlers (the app calls it once)
int preemption_signal();    // the signal received, 0 if none

// Thrown by the trainer after the preemption checkpoint is written.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, const std::string& what) : std::runtime_error(what), signal_(signal) {}
  int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

}  // namespace hftrain
