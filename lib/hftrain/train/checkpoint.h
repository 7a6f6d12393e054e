// checkpoint-N directories (DESIGN.md §1): the files they hold, writing one, opening one.
// A save writes into a temporary sibling, fsyncs, then renames, so a crash leaves either no
// checkpoint-N or a whole one; its manifest records every file's size and CRC-32C, and an
// open refuses a checkpoint whose files differ, or that this run cannot continue.
#pragma once

#include "hftrain/train/train_plan.h"
#include "hftrain/train/trainer_state.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

inline constexpr const char* kCheckpointPrefix = "checkpoint-";
// The files, by HF's names (Trainer._save_checkpoint), and hftrain's manifest. The RNG
// files are named per rank (rng_state.h); the model directory's files by models/.
inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kModelConfigFile = "config.json";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kOptimizerFile = "optimizer.pt";
inline constexpr const char* kSchedulerFile = "scheduler.pt";
inline constexpr const char* kScalerFile = "scaler.pt";
// hftrain's manifest: the resolved config (model and data sections included), so that
// `hftrain resume --checkpoint DIR` needs nothing else, the data position and the world size,
// and each file's size and checksum. A final model directory holds it too, config only.
inline constexpr const char* kManifestFile = "hftrain_config.json";
inline constexpr int kCheckpointFormatVersion = 2;  // 1: config only; still read

std::string checkpoint_dir(const std::string& output_dir, int64_t step);

// The manifest of a model directory: format version and config.
nlohmann::json checkpoint_manifest(const nlohmann::json& config);
// Writes `manifest` into `dir` with a CRC-32C of its own content, so that a changed byte
// that still parses (a digit of the learning rate) is refused too.
void checkpoint_write_manifest(const std::string& dir, nlohmann::json manifest);
// A directory's manifest, checked (its checksum, format version, a config mapping); a user
// error naming it.
nlohmann::json checkpoint_read_manifest(const std::string& dir);

struct CheckpointSave {
  nlohmann::json config;  // the resolved config
  int64_t world_size = 1;
  int64_t batches_per_epoch = 0;
  DataPosition position;     // after the step being saved
  int64_t samples_seen = 0;  // train rows of every rank so far
  // Each writes its files into the directory it is given; the manifest comes last.
  std::vector<std::function<void(const std::string& dir)>> writers;
};
// Writes checkpoint `dir` atomically; an existing one of the same step is replaced only
// once the new one is complete.
void checkpoint_save(const std::string& dir, const CheckpointSave& save);

// What resuming needs to match; the checkpoint's values come from its files.
struct ResumeExpect {
  int64_t world_size = 1;
  int64_t train_batch_size = 0;
  int64_t gradient_accumulation_steps = 1;
  nlohmann::json model_config;  // the config.json of the model this run built
};

struct OpenCheckpoint {
  std::string dir;
  TrainerState state;
  bool has_manifest = false;            // written by hftrain
  std::optional<DataPosition> position; // hftrain's; for HF's, derived from global_step
  int64_t batches_per_epoch = 0;        // the epoch length it was saved with (0: unknown)
  int64_t samples_seen = 0;
  int64_t world_size = 0;               // the processes that saved it, from its RNG files (0: none)
  std::string file(const std::string& name) const { return dir + "/" + name; }
  bool has(const std::string& name) const;
};
// Opens checkpoint `dir`: it exists, holds a sane trainer_state.json, and every file its
// manifest lists is there with its size and CRC-32C. With `resume`, also what continuing it
// needs: optimizer.pt (not saved with save_only_model), and the batch size (the global one
// when the world size differs), gradient accumulation and model it was trained with. Every refusal is one user error
// naming the file and the value.
OpenCheckpoint checkpoint_open(const std::string& dir, const ResumeExpect* resume);

struct CheckpointEntry {
  int64_t step;
  std::string path;
};
// checkpoint-<digits> directories holding trainer_state.json, by step, ascending.
std::vector<CheckpointEntry> checkpoint_list(const std::string& output_dir);
std::optional<std::string> checkpoint_latest(const std::string& output_dir);

// Deletes the oldest checkpoints beyond `limit`; never the newest, never `keep` (the best).
void checkpoint_rotate(const std::string& output_dir, int64_t limit, const std::optional<std::string>& keep);

// What a killed save or rotation leaves in output_dir: ".tmp-checkpoint-N.<pid>" (a save in
// progress, removed), ".deleting-checkpoint-N.<pid>" (a rotation in progress, removed) and
// ".old-checkpoint-N.<pid>" (a re-save's previous copy: put back when checkpoint-N is missing,
// else removed). Call it only while holding the output_dir's lock.
void checkpoint_clean_leftovers(const std::string& output_dir);

}  // namespace hftrain
