// checkpoint-N directories (DESIGN.md §1): what they hold is written into a temporary
// sibling, fsynced, then renamed, so a crash leaves either no checkpoint-N or a whole
// one. Discovery only sees names checkpoint-<digits> that hold trainer_state.json.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

inline constexpr const char* kCheckpointPrefix = "checkpoint-";
// hftrain's own manifest in each checkpoint: the resolved config (model and data sections
// included) and a format version, so `hftrain resume --checkpoint DIR` needs nothing else.
inline constexpr const char* kCheckpointConfigFile = "hftrain_config.json";
inline constexpr int kCheckpointFormatVersion = 1;

std::string checkpoint_dir(const std::string& output_dir, int64_t step);

// Runs `write(tmp_dir)`, fsyncs every file, then renames tmp_dir to `dir`, replacing an
// existing checkpoint of the same step only once the new one is complete.
void checkpoint_write_atomic(const std::string& dir, const std::function<void(const std::string&)>& write);

struct CheckpointEntry {
  int64_t step;
  std::string path;
};
std::vector<CheckpointEntry> checkpoint_list(const std::string& output_dir);  // by step, ascending
std::optional<std::string> checkpoint_latest(const std::string& output_dir);

// Deletes the oldest checkpoints beyond `limit`; never the newest, never `keep` (the best).
void checkpoint_rotate(const std::string& output_dir, int64_t limit, const std::optional<std::string>& keep);

// What a killed save or rotation leaves in output_dir: ".tmp-checkpoint-N.<pid>" (a save in
// progress, removed), ".deleting-checkpoint-N.<pid>" (a rotation in progress, removed) and
// ".old-checkpoint-N.<pid>" (a re-save's previous copy: put back when checkpoint-N is missing,
// else removed). Call it only while holding the output_dir's lock.
void checkpoint_clean_leftovers(const std::string& output_dir);

}  // namespace hftrain
