// The checkpoint module: an atomic save with a manifest of checksums, rotation that keeps
// the newest and the best, and every refusal of checkpoint_open, each naming the file.
#include "hftrain/io/json_file.h"
#include "hftrain/train/checkpoint.h"
#include "hftrain/train/rng_state.h"
#include "test_util.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;
using namespace hftrain;
using hftrain::test::require_error;
using hftrain::test::TempDir;
using hftrain::test::write_bytes;
using json = nlohmann::json;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A checkpoint as the Trainer saves one: model config, trainer state, optimizer and RNG
// files (their bytes do not matter here), saved with `ga` and batch size 8.
CheckpointSave sample_save(int64_t step, int64_t ga = 2, bool model_only = false) {
  CheckpointSave s;
  s.config = json{{"gradient_accumulation_steps", ga}, {"per_device_train_batch_size", 8}};
  s.world_size = 1;
  s.batches_per_epoch = 10;
  s.position = DataPosition{1, 4};
  s.samples_seen = 112;
  s.writers.push_back([step](const std::string& d) {
    TrainerState st;
    st.global_step = step;
    st.train_batch_size = 8;
    io::write_json_file(d + "/" + kTrainerStateFile, trainer_state_to_json(st));
    io::write_json_file(d + "/" + kModelConfigFile, json{{"model_type", "gpt2"}, {"n_head", 4}, {"attn_pdrop", 0.1}});
    write_bytes(d + "/" + kModelFile, std::string(4096, 'w'));
  });
  if (!model_only)
    s.writers.push_back([](const std::string& d) {
      write_bytes(d + "/" + kOptimizerFile, std::string(1000, 'o'));
      write_bytes(d + "/" + rng_state_file(0, 1), "rng");
    });
  return s;
}

ResumeExpect expect_same() {
  return ResumeExpect{1, 8, 2, json{{"model_type", "gpt2"}, {"n_head", 4}, {"attn_pdrop", 0.1}}};
}

}  // namespace

TEST_CASE("checkpoint_save writes every file and a manifest that checkpoint_open reads back", "[unit][checkpoint]") {
  TempDir dir("ckpt");
  const std::string ck = checkpoint_dir(dir.str(), 6);
  checkpoint_save(ck, sample_save(6));
  const json m = io::read_json_file(ck + "/" + kManifestFile);
  CHECK(m["format_version"] == kCheckpointFormatVersion);
  CHECK(m["files"].contains(kModelFile));
  CHECK(m["files"][kModelFile]["bytes"] == 4096);
  CHECK_FALSE(m["files"].contains(kManifestFile));
  // No temporary directory is left beside it.
  for (const auto& e : fs::directory_iterator(dir.path)) CHECK(e.path().filename().string() == "checkpoint-6");
  const ResumeExpect expect = expect_same();
  const OpenCheckpoint o = checkpoint_open(ck, &expect);
  CHECK(o.state.global_step == 6);
  REQUIRE(o.position.has_value());
  CHECK(o.position->epoch == 1);
  CHECK(o.position->batches_in_epoch == 4);
  CHECK(o.batches_per_epoch == 10);
  CHECK(o.samples_seen == 112);
}

TEST_CASE("a save that fails leaves no checkpoint and no temporary directory; a re-save replaces whole",
          "[unit][checkpoint]") {
  TempDir dir("ckpt");
  const std::string ck = checkpoint_dir(dir.str(), 4);
  CheckpointSave broken = sample_save(4);
  broken.writers.push_back([](const std::string&) { throw std::runtime_error("disk full"); });
  CHECK_THROWS_WITH(checkpoint_save(ck, broken), "disk full");
  CHECK(fs::is_empty(dir.path));
  checkpoint_save(ck, sample_save(4));
  CHECK_THROWS(checkpoint_save(ck, broken));
  CHECK(fs::exists(ck + "/" + kOptimizerFile));  // the failed re-save left the first intact
  CheckpointSave again = sample_save(4);
  again.writers.push_back([](const std::string& d) { write_bytes(d + "/extra.txt", "x"); });
  checkpoint_save(ck, again);
  CHECK(fs::exists(ck + "/extra.txt"));
  CHECK(checkpoint_list(dir.str()).size() == 1);
}

TEST_CASE("checkpoint_open refuses a file changed, truncated or deleted after the save, naming it",
          "[unit][checkpoint]") {
  TempDir dir("ckpt");
  const std::string ck = checkpoint_dir(dir.str(), 2);
  for (const char* file : {kModelFile, kOptimizerFile, kTrainerStateFile, kModelConfigFile}) {
    fs::remove_all(ck);
    checkpoint_save(ck, sample_save(2));
    const std::string path = ck + "/" + file;
    std::string bytes = read_bytes(path);
    SECTION(std::string("a flipped byte in ") + file) {
      bytes[bytes.size() / 2] ^= 0x10;
      write_bytes(path, bytes);
      require_error(Error::kUser, [&] { checkpoint_open(ck, nullptr); }, {path, "is damaged", "CRC-32C"});
    }
    SECTION(std::string("a truncated ") + file) {
      write_bytes(path, bytes.substr(0, bytes.size() - 1));
      require_error(Error::kUser, [&] { checkpoint_open(ck, nullptr); }, {path, "is damaged", "bytes"});
    }
    SECTION(std::string("an emptied ") + file) {
      write_bytes(path, "");
      require_error(Error::kUser, [&] { checkpoint_open(ck, nullptr); }, {path, "is damaged"});
    }
    SECTION(std::string("a deleted ") + file) {
      fs::remove(path);
      const std::string expected = std::string(file) == kTrainerStateFile ? "not a checkpoint directory" : "is missing";
      require_error(Error::kUser, [&] { checkpoint_open(ck, nullptr); }, {expected});
    }
  }
}

TEST_CASE("checkpoint_open refuses what resuming cannot continue", "[unit][checkpoint]") {
  TempDir dir("ckpt");
  const std::string ck = checkpoint_dir(dir.str(), 6);
  checkpoint_save(ck, sample_save(6));
  ResumeExpect e = expect_same();
  SECTION("a path that does not exist") {
    require_error(Error::kUser, [&] { checkpoint_open(dir.str() + "/checkpoint-7", &e); },
                  {dir.str() + "/checkpoint-7", "does not exist"});
  }
  SECTION("a file, not a directory") {
    write_bytes(dir.str() + "/file", "x");
    require_error(Error::kUser, [&] { checkpoint_open(dir.str() + "/file", &e); }, {"is not a directory"});
  }
  SECTION("another gradient_accumulation_steps") {
    e.gradient_accumulation_steps = 4;
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {ck, "gradient_accumulation_steps 2", "has 4"});
  }
  SECTION("another batch size") {
    e.train_batch_size = 16;
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {kTrainerStateFile, "batch size 8", "has 16"});
  }
  SECTION("another world size") {
    e.world_size = 2;
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {"1 process(es)", "this run has 2"});
  }
  SECTION("another model of the same shapes") {
    e.model_config["n_head"] = 8;
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {kModelConfigFile, "n_head = 4", "has 8"});
  }
  SECTION("a changed dropout is a training setting, not another model") {
    e.model_config["attn_pdrop"] = 0.0;
    CHECK(checkpoint_open(ck, &e).state.global_step == 6);
  }
  SECTION("save_only_model: no optimizer state to resume") {
    const std::string only = checkpoint_dir(dir.str(), 8);
    checkpoint_save(only, sample_save(8, 2, /*model_only=*/true));
    require_error(Error::kUser, [&] { checkpoint_open(only, &e); }, {"holds no optimizer.pt", "save_only_model"});
    CHECK(checkpoint_open(only, nullptr).state.global_step == 8);  // evaluating it is fine
  }
  SECTION("a format version from a newer hftrain") {
    json m = io::read_json_file(ck + "/" + kManifestFile);
    m["format_version"] = kCheckpointFormatVersion + 1;
    checkpoint_write_manifest(ck, m);
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {kManifestFile, "unsupported checkpoint format_version"});
  }
  SECTION("a changed byte in the manifest that still parses") {
    const std::string path = ck + "/" + kManifestFile;
    std::string text = read_bytes(path);
    const size_t at = text.find("\"per_device_train_batch_size\": 8");
    REQUIRE(at != std::string::npos);
    text[text.find('8', at)] = '9';
    write_bytes(path, text);
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {path, "is damaged"});
  }
  SECTION("a trainer state no run reaches") {
    json m = io::read_json_file(ck + "/" + kManifestFile);
    m.erase("files");  // as an edited checkpoint of format 1 would be
    checkpoint_write_manifest(ck, m);
    json st = io::read_json_file(ck + "/" + kTrainerStateFile);
    st["global_step"] = -5;
    io::write_json_file(ck + "/" + kTrainerStateFile, st);
    require_error(Error::kUser, [&] { checkpoint_open(ck, &e); }, {kTrainerStateFile, "global_step is -5"});
  }
}

TEST_CASE("rotation keeps the newest and the best, and never counts an incomplete directory", "[unit][checkpoint]") {
  TempDir dir("ckpt");
  for (int64_t step : {2, 4, 6, 8}) checkpoint_save(checkpoint_dir(dir.str(), step), sample_save(step));
  fs::create_directories(dir.str() + "/checkpoint-10");  // no trainer_state.json: not a checkpoint
  checkpoint_rotate(dir.str(), 2, checkpoint_dir(dir.str(), 2));
  std::vector<int64_t> kept;
  for (const auto& c : checkpoint_list(dir.str())) kept.push_back(c.step);
  CHECK(kept == std::vector<int64_t>{2, 8});
  CHECK(checkpoint_latest(dir.str()) == checkpoint_dir(dir.str(), 8));
  checkpoint_rotate(dir.str(), 1, std::nullopt);
  CHECK(checkpoint_latest(dir.str()) == checkpoint_dir(dir.str(), 8));
  CHECK(checkpoint_list(dir.str()).size() == 1);
  for (const auto& e : fs::directory_iterator(dir.path))
    CHECK(e.path().filename().string().rfind(".deleting-", 0) == std::string::npos);
}
