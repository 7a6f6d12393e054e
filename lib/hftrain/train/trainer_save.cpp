// What the Trainer writes and reads back: checkpoint-N directories (through the checkpoint
// module) and the final model directory.
#include "hftrain/train/trainer.h"

#include "hftrain/models/lora.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/core/host_sync.h"
#include "hftrain/core/log.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/dist/sharded.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/pickle.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/train/rng_state.h"

#include <ATen/Functions.h>

#include <filesystem>

namespace hftrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

void Trainer::write_model_files(const std::string& dir, bool final_export) {
  // Checkpoints keep the float32 master weights, so that a resume continues exactly; the final
  // export is written in model.torch_dtype.
  if (config_.peft) {
    // As PeftModel.save_pretrained: the adapter alone (float32, as trained).
    LoraConfig lora = *config_.peft;
    if (lora.base_model_name_or_path.empty()) lora.base_model_name_or_path = config_.model.pretrained;
    lora_save(*model_, lora, dir);
  } else {
    SaveWeights how;
    how.torch_dtype = final_export ? config_.model.torch_dtype : "float32";
    how.max_shard_size = config_.model.max_shard_size;
    model_save_pretrained(*model_, dir, how);
  }
  tokenizer_save_pretrained(*tokenizer_, dir, config_.data.block_size);
  io::write_json_file(dir + "/training_args.json", training_args_to_json(args_));
  checkpoint_write_manifest(dir, checkpoint_manifest(config_to_json(config_)));
}

void Trainer::save_model(const std::string& dir) {
  if (!is_main()) return;
  check_finite_weights("saving the model to " + dir);
  fs::create_directories(dir);
  write_model_files(dir, /*final_export=*/true);
  io::write_json_file(dir + "/" + kTrainerStateFile, trainer_state_to_json(state_));
  if (config_.peft && config_.peft->save_merged) {
    // merge_and_unload's model as an ordinary HF directory; the run's model keeps its adapter.
    const std::string merged = dir + "/merged";
    fs::create_directories(merged);
    SaveWeights how;
    how.torch_dtype = config_.model.torch_dtype;
    how.max_shard_size = config_.model.max_shard_size;
    lora_with_merged(*model_, [&] { model_save_pretrained(*model_, merged, how); });
    tokenizer_save_pretrained(*tokenizer_, merged, config_.data.block_size);
  }
}

// One host read over every parameter, once per save: a diverged run stops here instead of
// replacing good checkpoints with NaN weights.
void Trainer::check_finite_weights(const std::string& about_to) {
  if (!config_.stop_on_nonfinite) return;
  std::vector<at::Tensor> finite;
  for (const auto& p : model_->named_parameters()) finite.push_back(at::isfinite(p.value()).all());
  if (finite.empty() || host_copy(at::stack(finite).all()).item<double>() != 0) return;
  std::string bad;
  for (const auto& p : model_->named_parameters())
    if (!at::isfinite(p.value()).all().item<bool>()) {
      bad = p.key();
      break;
    }
  const auto last = checkpoint_latest(args_.output_dir);
  fail_runtime("step {}: the weights are not finite ({} holds NaN or inf): training has diverged; stopped before {}{}. "
               "Lower learning_rate (stop_on_nonfinite: false saves them anyway)",
               state_.global_step, bad, about_to,
               last ? "; the last good checkpoint is " + *last : std::string());
}

void Trainer::save_checkpoint() {
  store_flos();
  state_.stateful_callbacks["TrainerControl"] = trainer_control_to_json(control_);
  for (const auto& cb : callbacks_.callbacks())
    if (json st = cb->state(); !st.is_null()) state_.stateful_callbacks[cb->name()] = st;
  const std::string dir = checkpoint_dir(args_.output_dir, state_.global_step);
  // Sharded: every rank takes part in gathering the weights (stage 3) and the optimizer state.
  if (sharded_) sharded_->with_full_parameters([&] { write_checkpoint(dir); });
  else write_checkpoint(dir);
  if (pg_) pg_->barrier();  // no rank reads the checkpoint before it is complete
  last_saved_step_ = state_.global_step;
}

void Trainer::write_checkpoint(const std::string& dir) {
  // Every rank holds the same weights: all stop here together, none waits in a collective.
  check_finite_weights("saving " + dir);
  // optimizer.pt holds the unsharded optimizer's state, whatever the sharding.
  c10::IValue optim_state;
  if (!args_.save_only_model && sharded_) optim_state = sharded_->consolidate(optimizer_->state_dict());
  else if (!args_.save_only_model && is_main()) optim_state = optimizer_->state_dict();
  // Rank 0 writes the whole directory, each rank's RNG state included (gathered here), so
  // that the checkpoint appears at once, complete, or not at all.
  std::vector<c10::IValue> rng{rng_state_capture(device_, args_.seed)};
  if (pg_ && !args_.save_only_model) {
    rng.clear();
    const std::vector<at::Tensor> cpu = pg_->all_gather(generator_state(c10::Device(c10::kCPU)));
    std::vector<at::Tensor> gpu(cpu.size());
    if (device_.is_cuda()) gpu = pg_->all_gather(generator_state(device_));
    for (size_t r = 0; r < cpu.size(); ++r) rng.push_back(rng_state_dict(cpu[r], gpu[r], args_.seed));
  }
  const int64_t samples = pg_ ? static_cast<int64_t>(pg_->sum(static_cast<double>(samples_seen_))) : samples_seen_;
  if (is_main()) {
    CheckpointSave save;
    save.config = config_to_json(config_);
    save.world_size = world_size();
    save.batches_per_epoch = plan_.batches_per_epoch;
    save.position = position_;
    save.samples_seen = samples;
    save.writers.push_back([&](const std::string& d) {
      write_model_files(d, /*final_export=*/false);
      io::write_json_file(d + "/" + kTrainerStateFile, trainer_state_to_json(state_));
    });
    if (!args_.save_only_model)  // HF: such a checkpoint holds the model only
      save.writers.push_back([&](const std::string& d) {
        io::pickle_save_file(d + "/" + kOptimizerFile, optim_state);
        io::pickle_save_file(d + "/" + kSchedulerFile, scheduler_->state_dict());
        if (scaler_) io::pickle_save_file(d + "/" + kScalerFile, scaler_->state_dict());
        for (size_t r = 0; r < rng.size(); ++r)
          io::pickle_save_file(d + "/" + rng_state_file(static_cast<int64_t>(r), world_size()), rng[r]);
      });
    checkpoint_save(dir, save);
    if (args_.save_total_limit)
      checkpoint_rotate(args_.output_dir, *args_.save_total_limit, state_.best_model_checkpoint);
  }
}

DataPosition Trainer::load_checkpoint(const OpenCheckpoint& ckpt) {
  auto load_weights = [&] {
    if (config_.peft) lora_load_weights(*model_, *config_.peft, ckpt.dir);
    else model_load_weights(*model_, model_weights_path(ckpt.dir));
  };
  if (sharded_) sharded_->with_full_parameters(load_weights);  // stage 3: into every slice
  else load_weights();
  // optimizer.pt is the unsharded state, from a run of any world size and sharding.
  const std::string optim_file = ckpt.file(kOptimizerFile);
  const c10::IValue optim_state = io::pickle_load_file(optim_file);
  optimizer_->load_state_dict(sharded_ ? sharded_->shard_state(optim_state, optim_file) : optim_state, optim_file);
  scheduler_->load_state_dict(io::pickle_load_file(ckpt.file(kSchedulerFile)), ckpt.file(kSchedulerFile));
  // A checkpoint of a float32 or bf16 run has no scaler.pt: fp16 then starts from torch's
  // initial scale, as HF does.
  if (scaler_ && ckpt.has(kScalerFile))
    scaler_->load_state_dict(io::pickle_load_file(ckpt.file(kScalerFile)), ckpt.file(kScalerFile));
  // The run's bounds come from this run's arguments (max_steps may be raised to continue).
  TrainerState loaded = ckpt.state;
  loaded.max_steps = state_.max_steps;
  loaded.num_train_epochs = state_.num_train_epochs;
  loaded.logging_steps = state_.logging_steps;
  loaded.eval_steps = state_.eval_steps;
  loaded.save_steps = state_.save_steps;
  state_ = loaded;
  // Callback state (early stopping's counter) continues where it was, so that a resumed run
  // behaves as the uninterrupted one; HF restores it only with
  // restore_callback_states_from_checkpoint.
  for (const auto& cb : callbacks_.callbacks())
    if (!cb->state().is_null() && state_.stateful_callbacks.contains(cb->name()))
      cb->restore(state_.stateful_callbacks.at(cb->name()), ckpt.file(kTrainerStateFile));
  // Another world size (the optimizer state is whole in any case): the data continues at
  // this run's position for the step, and ranks the checkpoint had no RNG state for keep
  // their seeded one, as HF resumes.
  const bool same_world = ckpt.world_size == 0 || ckpt.world_size == world_size();
  const int64_t rank = pg_ ? pg_->rank() : 0;
  if (!same_world && is_main())
    warn_line(fmt::format("{} was saved by {} process(es) and this run has {}: the data continues from step {} in "
                          "this run's order{}",
                          ckpt.dir, ckpt.world_size, world_size(), state_.global_step,
                          world_size() > ckpt.world_size ? "; the ranks the checkpoint has no random state for start "
                                                           "from the seed"
                                                         : ""));
  const std::string rng_path = ckpt.file(rng_state_file(rank, same_world ? world_size() : ckpt.world_size));
  // HF's file also holds Python's and NumPy's states; hftrain needs neither.
  if (same_world || rank < ckpt.world_size)
    rng_state_restore(io::pickle_load_file(rng_path, /*drop_foreign=*/true), rng_path, device_);
  // hftrain's checkpoints say where the data stood; HF's are placed by their step.
  samples_seen_ = ckpt.samples_seen / world_size();
  if (!ckpt.position || !same_world) return plan_.position_of(state_.global_step);
  if (ckpt.batches_per_epoch != plan_.batches_per_epoch && is_main())
    warn_line(fmt::format("{} was saved with {} batches per epoch and the train data now makes {}: it resumes at "
                          "batch {} of epoch {} of the data as it is now",
                          ckpt.dir, ckpt.batches_per_epoch, plan_.batches_per_epoch, ckpt.position->batches_in_epoch,
                          ckpt.position->epoch));
  return plan_.normalize(*ckpt.position);
}

}  // namespace hftrain
