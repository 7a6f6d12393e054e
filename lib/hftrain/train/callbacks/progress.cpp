#include "hftrain/train/callbacks/progress.h"

#include <cmath>
#include <cstdio>

namespace hftrain {

void ProgressCallback::on_train_begin(const Args& a, State& s, Control& c) {
  start_ = std::chrono::steady_clock::now();
  start_step_ = s.global_step;
}

void ProgressCallback::draw(const State& s) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(s.global_step - start_step_) / secs : 0;
  const double eta = rate > 0 ? static_cast<double>(s.max_steps - s.global_step) / rate : 0;
  const int width = 24;
  const int filled = s.max_steps > 0 ? static_cast<int>(width * s.global_step / s.max_steps) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::printf("\r\033[K[%s] %lld/%lld  loss %.4f  lr %.3g  %.2f it/s  ETA %dm%02ds", bar.c_str(),
              static_cast<long long>(s.global_step), static_cast<long long>(s.max_steps), loss_, lr_, rate,
              static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
  std::fflush(stdout);
}

void ProgressCallback::on_step_end(const Args& a, State& s, Control& c) {
  if (live(a) && s.is_world_process_zero) draw(s);
}

void ProgressCallback::on_log(const Args& a, State& s, Control& c, const Json& logs) {
  if (!s.is_world_process_zero) return;
  if (logs.contains("loss")) loss_ = logs["loss"].get<double>();
  if (logs.contains("learning_rate")) lr_ = logs["learning_rate"].get<double>();
  std::printf("%s%s\n", live(a) ? "\r\033[K" : "", logs.dump().c_str());
  if (live(a) && s.global_step > 0 && s.global_step < s.max_steps) draw(s);
  std::fflush(stdout);
}

void ProgressCallback::on_train_end(const Args& a, State& s, Control& c) {
  if (live(a) && s.is_world_process_zero) std::printf("\r\033[K");
  std::fflush(stdout);
}

}  // namespace hftrain
