#include "hftrain/run.h"

#include "hftrain/builtins.h"
#include "hftrain/core/error.h"
#include "hftrain/core/log.h"
#include "hftrain/core/memory_limit.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/dataset.h"
#include "hftrain/dist/env.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/data/tokenizer.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/safetensors.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/lora.h"
#include "hftrain/models/layers.h"
#include "hftrain/optim/optimizer_factory.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/predict_input.h"
#include "hftrain/train/checkpoint.h"
#include "hftrain/train/preemption.h"
#include "hftrain/train/trainer.h"

#include <ATen/Functions.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>

namespace hftrain {

namespace fs = std::filesystem;
using json = nlohmann::json;

ConfigSource config_source(const std::optional<std::string>& config_path, const std::vector<std::string>& sets) {
  ConfigSource src;
  if (config_path) config_merge_file(src, *config_path);
  else config_merge_text(src, kDefaultConfigYaml, "built-in default config");
  for (const auto& s : sets) config_merge_set(src, s);
  return src;
}

ConfigSource config_source_from_checkpoint(const std::string& checkpoint, const std::vector<std::string>& sets) {
  const json manifest = checkpoint_read_manifest(checkpoint);
  ConfigSource src;
  config_merge_json(src, manifest.at("config"), checkpoint + "/" + kManifestFile);
  for (const auto& s : sets) config_merge_set(src, s);
  return src;
}

ConfigSource config_source_for_resume(const std::string& checkpoint, const std::optional<std::string>& config_path,
                                      const std::vector<std::string>& sets) {
  const fs::path dir(checkpoint);
  std::error_code ec;
  HFT_CHECK(fs::is_directory(dir, ec), "checkpoint {} {}", checkpoint,
            fs::exists(dir, ec) ? "is not a directory" : "does not exist");
  ConfigSource src;
  if (fs::is_regular_file(dir / kManifestFile, ec)) {
    HFT_CHECK(!config_path, "{} holds the config it was trained with ({}); change keys with --set, not --config",
              checkpoint, kManifestFile);
    src = config_source_from_checkpoint(checkpoint, sets);
  } else {
    HFT_CHECK(fs::is_regular_file(dir / kTrainerStateFile, ec), "{} is not a checkpoint directory (no {})",
              checkpoint, kTrainerStateFile);
    HFT_CHECK(config_path.has_value(),
              "{} has no {}: it was not written by hftrain (the Python Trainer keeps its arguments in a pickled "
              "training_args.bin, which hftrain does not read); give the run's config with --config run.yaml",
              checkpoint, kManifestFile);
    src = config_source(config_path, {});
    config_merge_set(src, "model.pretrained=" + checkpoint);  // the architecture and weights it holds
    for (const auto& s : sets) config_merge_set(src, s);
    if (fs::exists(dir / "training_args.bin", ec))
      std::fprintf(stderr, "hftrain: %s/training_args.bin (a Python pickle) is not read; the arguments come from %s\n",
                   checkpoint.c_str(), config_path->c_str());
  }
  config_merge_set(src, "resume_from_checkpoint=" + checkpoint);
  return src;
}

namespace {

struct Components {
  std::shared_ptr<ProcessGroup> pg;  // a data parallel run's, else null
  bool main() const { return !pg || pg->rank() == 0; }  // rank 0 alone writes
  std::shared_ptr<const Tokenizer> tokenizer;
  Datasets data;
  std::shared_ptr<Model> model;
  std::vector<std::unique_ptr<Callback>> callbacks;
};

}  // namespace

namespace {

// Everything that reads user input, before anything is written. train: false for an
// evaluation, which reads only data.eval when there is one.
Components build(const Config& c, const std::string& pretrained_override = "", bool train = true) {
  register_builtins();
  Components out;
  // Launched as one rank of several (torchrun, Slurm, scripts/launch): join the others.
  const DistEnv dist = dist_env_from_process();
  if (dist.distributed()) {
    out.pg = std::make_shared<ProcessGroup>(dist, std::chrono::seconds(c.args.ddp_timeout));
  }
  out.tokenizer = tokenizer_load(c.data.tokenizer);
  for (const CallbackSpec& cb : c.callbacks) out.callbacks.push_back(callback_registry().create(cb.name, cb.options, cb.where));
  ModelOptions mo = c.model;
  // A LoRA checkpoint holds the adapter alone: the base comes from the run's config.
  if (!pretrained_override.empty() && !c.peft) mo.pretrained = pretrained_override;
  const json tree = model_config_tree(mo);
  const ModelTask task = model_task(tree, mo.type);
  // Pre-tokenized ids must index the model's embeddings (its vocab_size, else the tokenizer's).
  const int64_t vocab = tree.contains("vocab_size") && tree["vocab_size"].is_number_integer()
                            ? tree["vocab_size"].get<int64_t>() : 0;
  // Rank 0 tokenizes first and fills the cache that the others then read (HF's
  // main_process_first).
  if (out.pg && out.pg->rank() != 0) out.pg->barrier();
  DataLoad how;
  how.task = task;
  how.seed = static_cast<uint64_t>(c.args.data_seed.value_or(c.args.seed));
  how.vocab_size = vocab;
  how.train = train;
  out.data = datasets_load(c.data, *out.tokenizer, how);
  if (out.pg && out.pg->rank() == 0) out.pg->barrier();
  if (task == ModelTask::kSequenceClassification) {
    // As run_glue configures a new classifier: the data's labels, and the pad token the
    // batches are padded with (GPT-2 pools at the first one).
    const auto& names = out.data.label_names;
    if (mo.pretrained.empty() && !mo.config.contains("id2label") && !mo.config.contains("num_labels")) {
      for (size_t i = 0; i < names.size(); ++i) {
        mo.config["id2label"][std::to_string(i)] = names[i];
        mo.config["label2id"][names[i]] = i;
      }
    }
    if (!mo.config.contains("pad_token_id") && mo.pretrained.empty()) mo.config["pad_token_id"] = padding_id(*out.tokenizer);
    const int64_t declared = hf_num_labels(model_config_tree(mo));
    HFT_CHECK(declared == static_cast<int64_t>(names.size()),
              "the model has {} labels but the train data has {} ({})", declared, names.size(), join(names, ", "));
  }
  at::manual_seed(static_cast<uint64_t>(c.args.seed));  // HF's set_seed before the model is built
  out.model = model_create(mo);
  if (c.peft) {
    const LoraConfig& lora = *c.peft;
    const std::string from = !pretrained_override.empty() ? pretrained_override : lora.adapter;
    const LoraSummary s = lora_prepare(*out.model, lora, from);
    if (out.main() && train)
      std::printf("LoRA r=%lld on %zu modules: trainable parameters %lld of %lld (%.4f%%)%s\n",
                  static_cast<long long>(lora.r), s.targets.size(), static_cast<long long>(s.trainable),
                  static_cast<long long>(s.total), 100.0 * static_cast<double>(s.trainable) / static_cast<double>(s.total),
                  from.empty() ? "" : (", continuing " + from).c_str());
  }
  json hf = out.model->hf_config();
  for (const char* key : {"n_positions", "max_position_embeddings"})
    if (hf.contains(key))
      HFT_CHECK(c.data.block_size <= hf[key].get<int64_t>(), "data.block_size {} exceeds the model's {} {}",
                c.data.block_size, key, hf[key].get<int64_t>());
  if (hf.contains("vocab_size"))
    HFT_CHECK(out.tokenizer->vocab_size() <= hf["vocab_size"].get<int64_t>(),
              "tokenizer \"{}\" has {} tokens, more than the model's vocab_size {}", c.data.tokenizer,
              out.tokenizer->vocab_size(), hf["vocab_size"].get<int64_t>());
  return out;
}

// Refuses an output_dir that cannot be written, or whose checkpoints a fresh run would mix with.
// Returns whether it created output_dir.
bool prepare_output_dir(const TrainingArguments& a, bool resuming) {
  fs::path d(a.output_dir);
  std::error_code ec;
  if (fs::exists(d, ec)) {
    HFT_CHECK(fs::is_directory(d, ec), "output_dir {} exists and is not a directory", a.output_dir);
    HFT_CHECK(::access(d.c_str(), W_OK | X_OK) == 0, "output_dir {} is not writable", a.output_dir);
    auto existing = checkpoint_list(a.output_dir);
    HFT_CHECK(resuming || a.overwrite_output_dir || existing.empty(),
              "output_dir {} already holds {}; set resume_from_checkpoint: true to continue that run, or "
              "overwrite_output_dir: true to train over it",
              a.output_dir, fs::path(existing.empty() ? "" : existing.back().path).filename().string());
    return false;
  }
  fs::create_directories(d, ec);
  HFT_CHECK(!ec, "cannot create output_dir {}: {}", a.output_dir, ec.message());
  return true;
}

// One run per output_dir: an exclusive flock on output_dir/.hftrain.lock, held until the
// process exits (the kernel drops it then, however the process ends). Two runs into one
// directory would replace or interleave each other's checkpoints and logs.
class OutputDirLock {
 public:
  explicit OutputDirLock(const std::string& dir) : path_(dir + "/.hftrain.lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    HFT_CHECK(fd_ >= 0, "cannot create {}: {}", path_, std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {};
      const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
      ::close(fd_);
      fail("output_dir {} is in use by another hftrain run (pid {}); give this run another output_dir", dir,
           n > 0 ? std::string(pid, static_cast<size_t>(n)) : std::string("unknown"));
    }
    // The pid is only for another run's message: failing to write it changes nothing else.
    const std::string me = std::to_string(::getpid());
    [[maybe_unused]] const bool written =
        ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, me.data(), me.size(), 0) == static_cast<ssize_t>(me.size());
  }
  ~OutputDirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputDirLock(const OutputDirLock&) = delete;
  OutputDirLock& operator=(const OutputDirLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// The arguments that differ from HF's defaults, and the model and data sections.
void print_config(const Config& c) {
  json all = config_to_json(c);
  const json defaults = training_args_to_json(TrainingArguments{});
  json shown = json::object();
  for (const auto& [k, v] : all.items())
    if (!defaults.contains(k) || defaults.at(k) != v) shown[k] = v;
  std::printf("hftrain %s (other TrainingArguments at HF's defaults; hftrain config prints all)\n%s",
              HFTRAIN_VERSION, json_to_yaml(shown).c_str());
}

}  // namespace

namespace {

void run_train_attempt(const Config& config) {
  std::optional<std::string> resume_dir;
  if (config.args.resume_from_checkpoint) {
    const std::string& r = *config.args.resume_from_checkpoint;
    resume_dir = r == "true" ? checkpoint_latest(config.args.output_dir) : r;
    HFT_CHECK(resume_dir.has_value(), "resume_from_checkpoint: true, but output_dir {} holds no checkpoint",
              config.args.output_dir);
  }
  Components parts = build(config);
  // Stopped while the data was prepared: nothing was written yet, so nothing is.
  if (const int sig = parts.pg ? static_cast<int>(parts.pg->max(preemption_signal())) : preemption_signal())
    throw Interrupted(sig, fmt::format("stopped by signal {} before training started; nothing was written", sig));
  Trainer trainer(config, parts.model, parts.tokenizer, std::move(parts.data), parts.pg);
  trainer.plan();  // too few windows for a batch is refused before anything is written
  // Every refusal a checkpoint can cause (a damaged file, another batch size, accumulation,
  // world size or model) comes now, before output_dir is touched.
  std::optional<OpenCheckpoint> resume;
  if (resume_dir) {
    const ResumeExpect expect = trainer.resume_expect();
    resume = checkpoint_open(*resume_dir, &expect);
  }
  bool created = false;
  std::optional<OutputDirLock> lock;
  if (parts.main()) {
    created = prepare_output_dir(config.args, resume.has_value());
    try {
      lock.emplace(config.args.output_dir);
      checkpoint_clean_leftovers(config.args.output_dir);
    } catch (const Error&) {
      std::error_code ec;
      if (created) fs::remove(config.args.output_dir, ec);
      throw;
    }
    print_config(config);
  }
  for (auto& cb : parts.callbacks) trainer.callbacks().add(std::move(cb));
  json summary;
  try {
    summary = trainer.train(resume ? &*resume : nullptr);
  } catch (const Error& e) {
    // A refusal found only now (a checkpoint file that does not load) leaves nothing behind.
    std::error_code ec;
    if (created && e.kind() == Error::kUser) {
      fs::remove(lock->path(), ec);
      if (fs::is_empty(config.args.output_dir, ec)) fs::remove(config.args.output_dir, ec);
    }
    throw;
  }
  if (!parts.main()) return;
  trainer.save_model(config.args.output_dir);
  io::write_json_file(config.args.output_dir + "/train_results.json", summary);
  std::printf("saved the model to %s\n", config.args.output_dir.c_str());
}

}  // namespace

// auto_find_batch_size: accelerate's find_executable_batch_size around the whole run. An
// out-of-memory halves per_device_train_batch_size and starts again from the same state (the
// same seed, model and data); the checkpoints the failed attempt wrote are removed first.
void run_train(const Config& config) {
  if (!config.args.auto_find_batch_size) return run_train_attempt(config);
  HFT_CHECK(!dist_env_from_process().distributed(),
            "auto_find_batch_size is not supported in a data parallel run: an out-of-memory on one rank would leave "
            "the others waiting; set per_device_train_batch_size");
  std::vector<std::string> before;
  for (const CheckpointEntry& e : checkpoint_list(config.args.output_dir)) before.push_back(e.path);
  Config attempt = config;
  for (;;) {
    std::string failure;
    try {
      run_train_attempt(attempt);
      return;
    } catch (const c10::Error& e) {
      if (!is_out_of_memory(e.what_without_backtrace())) throw;
      failure = e.what_without_backtrace();
    } catch (const std::bad_alloc&) {
      failure = "std::bad_alloc";
    }
    const int64_t was = attempt.args.per_device_train_batch_size;
    if (was / 2 == 0) fail_runtime("No executable batch size found, reached zero. ({})", failure.substr(0, failure.find('\n')));
    for (const CheckpointEntry& e : checkpoint_list(attempt.args.output_dir)) {
      std::error_code ec;
      if (std::find(before.begin(), before.end(), e.path) == before.end()) fs::remove_all(e.path, ec);
    }
    warn("out of memory at per_device_train_batch_size {}; retrying with {} (auto_find_batch_size)", was, was / 2);
    attempt.args.per_device_train_batch_size = was / 2;
  }
}

void run_evaluate(const Config& config, const std::optional<std::string>& checkpoint) {
  // A checkpoint's files are checked against its manifest before the model is read from it.
  std::optional<OpenCheckpoint> opened;
  if (checkpoint) opened = checkpoint_open(*checkpoint, nullptr);
  Components parts = build(config, checkpoint.value_or(""), /*train=*/false);
  HFT_CHECK(parts.data.eval != nullptr || !parts.data.named_evals.empty(),
            "hftrain evaluate needs an eval dataset: set data.eval or data.validation_split_percentage");
  if (parts.main()) prepare_output_dir(config.args, /*resuming=*/true);
  Trainer trainer(config, parts.model, parts.tokenizer, std::move(parts.data), parts.pg);
  if (opened) trainer.set_state(opened->state);
  json metrics = trainer.evaluate();
  if (!parts.main()) return;
  const std::string out = (checkpoint ? *checkpoint : config.args.output_dir) + "/eval_results.json";
  io::write_json_file(out, metrics);
  std::printf("wrote %s\n", out.c_str());
}

void run_predict(const Config& config, const std::string& checkpoint, const std::string& input,
                 const std::string& output, const std::string& logits_path) {
  std::error_code ec;
  HFT_CHECK(fs::is_regular_file(input, ec), "predict input not found: {}", input);
  if (fs::is_regular_file(fs::path(checkpoint) / kTrainerStateFile, ec)) checkpoint_open(checkpoint, nullptr);
  Components parts = build(config, checkpoint);
  const Tokenizer& tok = *parts.tokenizer;
  const ModelTask task = parts.model->task();
  const PredictInput in = predict_input(config, tok, parts.model->hf_config(), task, input,
                                        static_cast<uint64_t>(config.args.data_seed.value_or(config.args.seed)));
  const fs::path out_dir = fs::path(output).parent_path();
  if (!out_dir.empty() && parts.main()) fs::create_directories(out_dir);
  Trainer trainer(config, parts.model, parts.tokenizer, std::move(parts.data), parts.pg);
  std::vector<std::vector<int64_t>> predictions;
  at::Tensor logits;
  const json metrics = trainer.predict(*in.data, predictions, logits_path.empty() ? nullptr : &logits, in.labelled);
  if (!parts.main()) return;
  if (!logits_path.empty()) {
    if (!fs::path(logits_path).parent_path().empty()) fs::create_directories(fs::path(logits_path).parent_path());
    io::safetensors_save(logits_path, {{"logits", logits}});
  }
  const std::string lines = predict_lines(in, tok, predictions);
  io::write_file_atomic(output, lines);
  io::write_json_file((out_dir.empty() ? fs::path(".") : out_dir).string() + "/test_results.json", metrics);
  std::printf("wrote %s (%zu %s)\n", output.c_str(), predictions.size(),
              task == ModelTask::kCausalLM ? "windows" : "examples");
}

}  // namespace hftrain
