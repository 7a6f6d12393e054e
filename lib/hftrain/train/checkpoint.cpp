#include "hftrain/train/checkpoint.h"

#include "hftrain/core/error.h"
#include "hftrain/io/atomic_file.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>

namespace fs = std::filesystem;

namespace hftrain {

std::string checkpoint_dir(const std::string& output_dir, int64_t step) {
  return (fs::path(output_dir) / (kCheckpointPrefix + std::to_string(step))).string();
}

void checkpoint_write_atomic(const std::string& dir, const std::function<void(const std::string&)>& write) {
  fs::path final_dir(dir);
  fs::path parent = final_dir.parent_path();
  std::string pid = std::to_string(::getpid());
  fs::path tmp = parent / (".tmp-" + final_dir.filename().string() + "." + pid);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write(tmp.string());
    for (const auto& e : fs::directory_iterator(tmp))
      if (e.is_regular_file()) io::fsync_path(e.path().string());
    io::fsync_path(tmp.string());
    if (fs::exists(final_dir)) {
      // Re-saving a step: the old copy stays until the new one is in place.
      fs::path old = parent / (".old-" + final_dir.filename().string() + "." + pid);
      fs::rename(final_dir, old);
      fs::rename(tmp, final_dir);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, final_dir);
    }
    io::fsync_path(parent.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

std::vector<CheckpointEntry> checkpoint_list(const std::string& output_dir) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  static const std::regex kName("checkpoint-([0-9]+)");
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(name, m, kName)) continue;
    if (!fs::is_regular_file(e.path() / "trainer_state.json")) continue;
    out.push_back({std::stoll(m[1]), e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<std::string> checkpoint_latest(const std::string& output_dir) {
  auto all = checkpoint_list(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().path;
}

void checkpoint_rotate(const std::string& output_dir, int64_t limit, const std::optional<std::string>& keep) {
  auto all = checkpoint_list(output_dir);
  int64_t excess = static_cast<int64_t>(all.size()) - limit;
  for (size_t i = 0; i + 1 < all.size() && excess > 0; ++i) {
    if (keep && fs::equivalent(all[i].path, *keep)) continue;
    // Out of discovery's sight first, in one rename: a kill while deleting leaves a hidden
    // directory, never a checkpoint-N with files missing.
    const fs::path from(all[i].path);
    const fs::path doomed = from.parent_path() / (".deleting-" + from.filename().string() + "." + std::to_string(::getpid()));
    fs::rename(from, doomed);
    io::fsync_path(from.parent_path().string());
    fs::remove_all(doomed);
    --excess;
  }
}

void checkpoint_clean_leftovers(const std::string& output_dir) {
  static const std::regex kLeftover("\\.(tmp|deleting|old)-(checkpoint-[0-9]+)\\.[0-9]+");
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) entries.push_back(e.path());
  for (const fs::path& p : entries) {
    const std::string name = p.filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, kLeftover)) continue;
    const fs::path final_dir = p.parent_path() / m[2].str();
    if (m[1] == "old" && !fs::exists(final_dir, ec)) {
      fs::rename(p, final_dir, ec);  // killed between the two renames of a re-save
      if (!ec) continue;
    }
    fs::remove_all(p, ec);
  }
}

}  // namespace hftrain
