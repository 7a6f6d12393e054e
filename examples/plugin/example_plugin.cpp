// A complete hftrain plugin: a callback that stops training once a logged loss falls below a
// threshold, and metrics: the token error rate (1 - accuracy), and two that take what
// include_for_metrics adds (the batches' mean loss, the input ids' sum). It includes nothing of hftrain
// but hftrain_plugin.h. Build it as a shared library (CMake: hftrain_example_plugin) and name it
// in a config:
//   plugins: [build/libhftrain_example_plugin.so]
//   callbacks: [{name: stop_below_loss, threshold: 2.5}]
//   metrics: [accuracy, token_error_rate]
#include "hftrain/plugin/hftrain_plugin.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

// The number after "key": in a JSON object's text, if any (enough for flat logs and options).
bool json_number(const char* text, const char* key, double* out) {
  char quoted[64];
  std::snprintf(quoted, sizeof quoted, "\"%s\":", key);
  const char* at = std::strstr(text, quoted);
  if (!at) return false;
  char* end = nullptr;
  *out = std::strtod(at + std::strlen(quoted), &end);
  return end != at + std::strlen(quoted);
}

struct StopBelowLoss {
  double threshold;
};

int stop_event(void* self, const char* event, const char* /*state*/, const char* data) {
  double loss;
  if (std::strcmp(event, "on_log") == 0 && json_number(data, "loss", &loss) &&
      loss < static_cast<StopBelowLoss*>(self)->threshold)
    return HFTRAIN_CONTROL_STOP;
  return 0;
}

void stop_destroy(void* self) { delete static_cast<StopBelowLoss*>(self); }

int make_stop(const char* options, hftrain_callback* out, char* error, int error_size) {
  double threshold;
  if (!json_number(options, "threshold", &threshold)) {
    std::snprintf(error, static_cast<size_t>(error_size), "stop_below_loss needs a number \"threshold\"");
    return 1;
  }
  *out = {new StopBelowLoss{threshold}, &stop_event, &stop_destroy};
  return 0;
}

struct ErrorRate {
  int64_t wrong = 0, total = 0;
};

void rate_add(void* self, const int64_t* predictions, const int64_t* labels, int64_t count) {
  auto* r = static_cast<ErrorRate*>(self);
  for (int64_t i = 0; i < count; ++i) {
    if (labels[i] == -100) continue;
    r->wrong += predictions[i] != labels[i];
    ++r->total;
  }
}

double rate_compute(void* self) {
  auto* r = static_cast<ErrorRate*>(self);
  const double v = r->total ? static_cast<double>(r->wrong) / static_cast<double>(r->total) : 0.0;
  *r = ErrorRate{};
  return v;
}

void rate_destroy(void* self) { delete static_cast<ErrorRate*>(self); }

int make_rate(const char* /*options*/, hftrain_metric* out, char* /*error*/, int /*error_size*/) {
  *out = {new ErrorRate, &rate_add, &rate_compute, &rate_destroy, nullptr, nullptr};
  return 0;
}

// With include_for_metrics: [loss], the mean of the evaluation batches' losses.
struct MeanLoss {
  double sum = 0;
  int64_t batches = 0;
};
void loss_add(void*, const int64_t*, const int64_t*, int64_t) {}
void loss_seen(void* self, double loss) {
  auto* m = static_cast<MeanLoss*>(self);
  m->sum += loss;
  ++m->batches;
}
double loss_compute(void* self) {
  auto* m = static_cast<MeanLoss*>(self);
  const double v = m->batches ? m->sum / static_cast<double>(m->batches) : 0.0;
  *m = MeanLoss{};
  return v;
}
void loss_destroy(void* self) { delete static_cast<MeanLoss*>(self); }
int make_loss(const char*, hftrain_metric* out, char*, int) {
  *out = {new MeanLoss, &loss_add, &loss_compute, &loss_destroy, nullptr, &loss_seen};
  return 0;
}

// With include_for_metrics: [inputs], the sum of the input ids at the scored positions.
struct InputSum {
  const int64_t* inputs = nullptr;  // the batch's, valid until add() returns
  double sum = 0;
};
void sum_inputs(void* self, const int64_t* ids, int64_t) { static_cast<InputSum*>(self)->inputs = ids; }
void sum_add(void* self, const int64_t*, const int64_t* labels, int64_t count) {
  auto* s = static_cast<InputSum*>(self);
  for (int64_t i = 0; s->inputs && i < count; ++i)
    if (labels[i] != -100) s->sum += static_cast<double>(s->inputs[i]);
  s->inputs = nullptr;
}
double sum_compute(void* self) {
  auto* s = static_cast<InputSum*>(self);
  const double v = s->sum;
  *s = InputSum{};
  return v;
}
void sum_destroy(void* self) { delete static_cast<InputSum*>(self); }
int make_sum(const char*, hftrain_metric* out, char*, int) {
  *out = {new InputSum, &sum_add, &sum_compute, &sum_destroy, &sum_inputs, nullptr};
  return 0;
}

}  // namespace

extern "C" int hftrain_plugin_register(const hftrain_registry* registry, int abi_version) {
  if (abi_version != HFTRAIN_PLUGIN_ABI) return 1;
  registry->add_callback(registry->host, "stop_below_loss", &make_stop);
  registry->add_metric(registry->host, "token_error_rate", &make_rate);
  registry->add_metric(registry->host, "mean_batch_loss", &make_loss);
  registry->add_metric(registry->host, "input_id_sum", &make_sum);
  return 0;
}
