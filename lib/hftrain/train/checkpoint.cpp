#include "hftrain/train/checkpoint.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/crc32c.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/mmap_file.h"
#include "hftrain/train/rng_state.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>

namespace fs = std::filesystem;

namespace hftrain {

using json = nlohmann::json;

std::string checkpoint_dir(const std::string& output_dir, int64_t step) {
  return (fs::path(output_dir) / (kCheckpointPrefix + std::to_string(step))).string();
}

json checkpoint_manifest(const json& config) {
  return json{{"format_version", kCheckpointFormatVersion}, {"config", config}};
}

namespace {

std::string crc_hex(uint32_t crc) { return fmt::format("{:08x}", crc); }

// The checksum of a manifest is over its compact serialization without the checksum key:
// keys sorted, numbers printed to round-trip, so that reading and re-serializing gives the
// same bytes.
std::string manifest_crc(json m) {
  m.erase("crc32c");
  const std::string text = m.dump();
  return crc_hex(io::crc32c(text.data(), text.size()));
}

}  // namespace

void checkpoint_write_manifest(const std::string& dir, json manifest) {
  manifest["crc32c"] = manifest_crc(manifest);
  io::write_json_file(dir + "/" + kManifestFile, manifest);
}

json checkpoint_read_manifest(const std::string& dir) {
  const std::string path = dir + "/" + kManifestFile;
  std::error_code ec;
  HFT_CHECK(fs::is_regular_file(path, ec), "{} is not an hftrain checkpoint: {} not found", dir, kManifestFile);
  json m = io::read_json_file(path);
  if (m.is_object() && m.contains("crc32c"))
    HFT_CHECK(m["crc32c"].is_string() && m["crc32c"].get<std::string>() == manifest_crc(m),
              "{} is damaged: its content does not match its crc32c (a changed byte)", path);
  const json version = m.is_object() ? m.value("format_version", json(nullptr)) : json(nullptr);
  HFT_CHECK(version.is_number_integer() && version.get<int64_t>() >= 1 &&
                version.get<int64_t>() <= kCheckpointFormatVersion,
            "{}: unsupported checkpoint format_version {} (this hftrain reads 1 to {})", path, clip(version.dump()),
            kCheckpointFormatVersion);
  HFT_CHECK(m.contains("config") && m["config"].is_object(), "{}: no \"config\" mapping", path);
  return m;
}

namespace {

uint32_t file_crc32c(const std::string& path) {
  const io::MappedFile f(path);
  return io::crc32c(f.data(), f.size());
}

// The manifest's "files": each regular file's size and CRC-32C, by name (the manifest's own
// bytes are its contents).
json file_table(const fs::path& dir) {
  json files = json::object();
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name == kManifestFile) continue;
    files[name] = json{{"bytes", e.file_size()}, {"crc32c", crc_hex(file_crc32c(e.path().string()))}};
  }
  return files;
}

}  // namespace

void checkpoint_save(const std::string& dir, const CheckpointSave& save) {
  const fs::path final_dir(dir);
  const fs::path parent = final_dir.parent_path();
  const std::string pid = std::to_string(::getpid());
  const fs::path tmp = parent / (".tmp-" + final_dir.filename().string() + "." + pid);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    for (const auto& write : save.writers) write(tmp.string());
    json manifest = checkpoint_manifest(save.config);
    manifest["world_size"] = save.world_size;
    manifest["data_position"] = json{{"epoch", save.position.epoch},
                                     {"batches_in_epoch", save.position.batches_in_epoch},
                                     {"batches_per_epoch", save.batches_per_epoch},
                                     {"samples_seen", save.samples_seen}};
    manifest["files"] = file_table(tmp);  // what the writers left, read back from the page cache
    checkpoint_write_manifest(tmp.string(), manifest);
    for (const auto& e : fs::directory_iterator(tmp))
      if (e.is_regular_file()) io::fsync_path(e.path().string());
    io::fsync_path(tmp.string());
    if (fs::exists(final_dir)) {
      // Re-saving a step: the old copy stays until the new one is in place.
      const fs::path old = parent / (".old-" + final_dir.filename().string() + "." + pid);
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

bool OpenCheckpoint::has(const std::string& name) const {
  std::error_code ec;
  return fs::is_regular_file(file(name), ec);
}

namespace {

// Every file the manifest lists is there, as long and with the checksum it was saved with.
void verify_files(const std::string& dir, const json& files, const std::string& manifest_path) {
  HFT_CHECK(files.is_object(), "{}: \"files\" must be a mapping", manifest_path);
  for (const auto& [name, entry] : files.items()) {
    HFT_CHECK(name.find('/') == std::string::npos && name != ".." && entry.is_object() &&
                  entry.value("bytes", json(nullptr)).is_number_unsigned() &&
                  entry.value("crc32c", json(nullptr)).is_string(),
              "{}: damaged entry for {} in \"files\"", manifest_path, clip(name));
    const std::string path = dir + "/" + name;
    std::error_code ec;
    HFT_CHECK(fs::is_regular_file(path, ec), "{} is missing; the checkpoint was saved with it ({})", path,
              kManifestFile);
    const auto bytes = fs::file_size(path, ec);
    HFT_CHECK(!ec && bytes == entry["bytes"].get<uint64_t>(),
              "{} is damaged: {} bytes, saved with {} (truncated or overwritten?)", path, bytes,
              entry["bytes"].get<uint64_t>());
    const std::string crc = crc_hex(file_crc32c(path));
    HFT_CHECK(crc == entry["crc32c"].get<std::string>(),
              "{} is damaged: its CRC-32C is {}, saved as {} (a changed byte)", path, crc,
              clip(entry["crc32c"].get<std::string>()));
  }
}

int64_t manifest_int(const json& j, const char* key, const std::string& where) {
  HFT_CHECK(j.is_object() && j.contains(key) && j[key].is_number_integer() && j[key].get<int64_t>() >= 0,
            "{}: \"{}\" must be an integer >= 0", where, key);
  return j[key].get<int64_t>();
}

// Keys of a model's config.json that a resume may change: they do not change the model's
// parameters or what they compute from them at a given step (dropout is a training setting).
bool changeable_model_key(const std::string& key) {
  static const char* const kFree[] = {"transformers_version", "torch_dtype", "_name_or_path", "use_cache"};
  if (std::find(std::begin(kFree), std::end(kFree), key) != std::end(kFree)) return true;
  return key.find("dropout") != std::string::npos || key.find("pdrop") != std::string::npos;
}

}  // namespace

OpenCheckpoint checkpoint_open(const std::string& dir, const ResumeExpect* resume) {
  std::error_code ec;
  HFT_CHECK(fs::exists(dir, ec), "checkpoint {} does not exist", dir);
  HFT_CHECK(fs::is_directory(dir, ec), "checkpoint {} is not a directory", dir);
  OpenCheckpoint out;
  out.dir = dir;
  HFT_CHECK(out.has(kTrainerStateFile), "{} is not a checkpoint directory (no {})", dir, kTrainerStateFile);
  out.has_manifest = out.has(kManifestFile);
  if (out.has_manifest) {
    const json m = checkpoint_read_manifest(dir);
    const std::string where = out.file(kManifestFile);
    if (m.contains("files")) verify_files(dir, m["files"], where);
    if (m.contains("data_position")) {
      const json& p = m["data_position"];
      out.position = DataPosition{manifest_int(p, "epoch", where), manifest_int(p, "batches_in_epoch", where)};
      out.batches_per_epoch = manifest_int(p, "batches_per_epoch", where);
      out.samples_seen = manifest_int(p, "samples_seen", where);
    }
    if (resume) {
      const json& args = m["config"];
      const int64_t saved_ga = args.value("gradient_accumulation_steps", json(1)).is_number_integer()
                                   ? args.value("gradient_accumulation_steps", json(1)).get<int64_t>() : 1;
      HFT_CHECK(saved_ga == resume->gradient_accumulation_steps,
                "{} was trained with gradient_accumulation_steps {}, this run has {}; resume needs the same "
                "(the data position and the step count depend on it)",
                dir, saved_ga, resume->gradient_accumulation_steps);
    }
  }
  out.state = trainer_state_from_json(io::read_json_file(out.file(kTrainerStateFile)), out.file(kTrainerStateFile));
  if (!resume) return out;
  out.world_size = rng_state_world_size(dir);
  if (out.world_size == 0 || out.world_size == resume->world_size) {
    HFT_CHECK(out.state.train_batch_size == resume->train_batch_size,
              "{}: the checkpoint was trained with batch size {}, this run has {}; resume needs the same batch size",
              out.file(kTrainerStateFile), out.state.train_batch_size, resume->train_batch_size);
  } else {  // another world size: the same global batch continues the same optimization
    const int64_t saved = out.state.train_batch_size * out.world_size, now = resume->train_batch_size * resume->world_size;
    HFT_CHECK(saved == now,
              "{} was saved by a run of {} process(es) with batch size {} each ({} in all) and this run has {} x {} = "
              "{}: a resume on another world size needs the same global batch",
              dir, out.world_size, out.state.train_batch_size, saved, resume->world_size, resume->train_batch_size, now);
  }
  HFT_CHECK(out.has(kOptimizerFile),
            "{} holds no {} (saved with save_only_model?): it cannot resume training; start a new run from it with "
            "model.pretrained instead",
            dir, kOptimizerFile);
  // The same model: a config that builds other shapes fails on loading the weights, but one
  // with the same shapes (another head count) would train on as another model.
  if (out.has(kModelConfigFile) && resume->model_config.is_object()) {
    const json saved = io::read_json_file(out.file(kModelConfigFile));
    HFT_CHECK(saved.is_object(), "{}: expected a JSON object", out.file(kModelConfigFile));
    for (const auto& [key, value] : resume->model_config.items()) {
      if (!saved.contains(key) || changeable_model_key(key)) continue;
      HFT_CHECK(saved[key] == value,
                "{}: the checkpoint's model has {} = {}, this run's has {}; a resume continues the same model "
                "(start a new run from it with model.pretrained to change it)",
                out.file(kModelConfigFile), key, clip(saved[key].dump()), clip(value.dump()));
    }
  }
  return out;
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
    if (!fs::is_regular_file(e.path() / kTrainerStateFile)) continue;
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
