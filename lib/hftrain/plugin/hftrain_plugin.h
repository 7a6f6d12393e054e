/* hftrain's plugin interface: callbacks and metrics in a shared library named in the config
 * (`plugins: [path/to/libmine.so]`), usable by name in `callbacks:` and `metrics:` without
 * rebuilding hftrain. Plain C, so that a plugin built with any compiler and any C++ standard
 * library loads; data crosses as JSON text and int64 arrays. A plugin exports
 *
 *   int hftrain_plugin_register(const hftrain_registry* registry, int abi_version);
 *
 * which returns 0 after adding its callbacks and metrics, or nonzero when abi_version is not
 * HFTRAIN_PLUGIN_ABI (the one it was built against); hftrain refuses the plugin then. The ABI
 * changes only by a new version number, with new struct names; within a version, optional
 * function pointers may be appended to a struct, which hftrain zeroes before make() fills it. examples/plugin/ is a complete
 * plugin, built by CMake and tested. */
#ifndef HFTRAIN_PLUGIN_H
#define HFTRAIN_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HFTRAIN_PLUGIN_ABI 1

/* Bits a callback event returns to set TrainerControl's flags. */
#define HFTRAIN_CONTROL_STOP 1     /* should_training_stop */
#define HFTRAIN_CONTROL_SAVE 2     /* should_save */
#define HFTRAIN_CONTROL_EVALUATE 4 /* should_evaluate */
#define HFTRAIN_CONTROL_LOG 8      /* should_log */

/* A callback instance (one per process in a data parallel run, as HF's callbacks). event()
 * runs on the Trainer's events with transformers' names (on_init_end,
 * on_train_begin, on_epoch_begin, on_step_begin, on_step_end, on_epoch_end, on_log,
 * on_evaluate, on_predict, on_save, on_train_end); `state` is trainer_state.json's JSON text,
 * `data` the logs or metrics (on_log, on_evaluate, on_predict) as JSON text, else "{}". The
 * strings live for the call only. It returns HFTRAIN_CONTROL_* bits, 0 for none. */
typedef struct hftrain_callback {
  void* self;
  int (*event)(void* self, const char* event, const char* state, const char* data);
  void (*destroy)(void* self);
} hftrain_callback;

/* A metric instance, reported as eval_<name> (test_<name> in predict). add() gets one
 * evaluation batch's aligned predictions and labels (argmax ids; a causal LM's position t
 * against the label at t + 1; -100 labels are not scored); compute() the value over the
 * batches since the last compute(), after which the metric starts again. */
typedef struct hftrain_metric {
  void* self;
  void (*add)(void* self, const int64_t* predictions, const int64_t* labels, int64_t count);
  double (*compute)(void* self);
  void (*destroy)(void* self);
  /* Optional (NULL: not wanted), called before add() for the same batch when the config's
   * include_for_metrics asks (HF's EvalPrediction.inputs and .losses): the input ids aligned
   * with the predictions (count of them), and the batch's mean loss. */
  void (*add_inputs)(void* self, const int64_t* input_ids, int64_t count);
  void (*add_loss)(void* self, double loss);
} hftrain_metric;

/* make() builds an instance from the config entry's options (JSON text of the mapping, less
 * "name"; "{}" for a bare name). It returns 0 and fills *out, or nonzero when the options are
 * wrong, writing a one-line reason (NUL-terminated, at most error_size bytes) to error. */
typedef int (*hftrain_make_callback)(const char* options, hftrain_callback* out, char* error, int error_size);
typedef int (*hftrain_make_metric)(const char* options, hftrain_metric* out, char* error, int error_size);

typedef struct hftrain_registry {
  void* host;
  void (*add_callback)(void* host, const char* name, hftrain_make_callback make);
  void (*add_metric)(void* host, const char* name, hftrain_make_metric make);
} hftrain_registry;

typedef int (*hftrain_plugin_register_fn)(const hftrain_registry* registry, int abi_version);

#ifdef __cplusplus
}
#endif

#endif /* HFTRAIN_PLUGIN_H */
