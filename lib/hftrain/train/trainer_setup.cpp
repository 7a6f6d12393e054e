// What the loop is built from: the Trainer's construction (device, default callbacks), the
// run's plan and batch order, the optimizer and schedule, and the forward under autocast.
#include "hftrain/train/trainer.h"

#include "hftrain/models/layers.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/dist/grad_reducer.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/dist/sharded.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/optim/optimizer_factory.h"

#include <ATen/Functions.h>

#include <algorithm>

namespace hftrain {

using json = nlohmann::json;

Trainer::Trainer(Config config, std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                 Datasets data, std::shared_ptr<ProcessGroup> pg)
    : config_(std::move(config)),
      args_(config_.args),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      data_(std::move(data)),
      pg_(pg && pg->world_size() > 1 ? std::move(pg) : nullptr) {
  memory_ = MemoryTracker(!args_.skip_memory_metrics);
  memory_.start("init");
  fusions() = config_.fused;
  // HF's args.device: the model moves there now, each batch as it is loaded.
  device_ = training_device(args_.use_cpu, pg_ ? pg_->local_rank() : 0);
  HFT_CHECK(!(pg_ && device_.is_cuda()),
            "data parallel training on GPUs needs the NCCL backend, which hftrain does not have yet; set use_cpu: true "
            "to train the ranks on the CPU over Gloo");
  model_->to(device_);
  if (args_.tf32) compat::set_tf32(*args_.tf32);
  // HF's floating_point_ops: 6 x non-embedding parameters x input tokens.
  auto embeddings = model_->embedding_parameter_names();
  for (const auto& p : model_->named_parameters()) {
    if (std::find(embeddings.begin(), embeddings.end(), p.key()) == embeddings.end())
      non_embedding_params_ += static_cast<double>(p.value().numel());
    if (p.value().requires_grad()) trainable_params_ += p.value().numel();
  }
  // As HF's Trainer calls gradient_checkpointing_enable() when the argument asks.
  model_->set_gradient_checkpointing(args_.gradient_checkpointing);
  callbacks_.add(std::make_unique<DefaultFlowCallback>());
  if (is_main())  // the callbacks that print or write files run on rank 0 only
    for (const std::string& name : default_callbacks(args_))
      callbacks_.add(callback_registry().create(name, json::object(), "the default callbacks"));
  callbacks_.on_init_end(args_, state_, control_);
  memory_.stop("init");
}

Trainer::~Trainer() = default;

bool Trainer::is_main() const { return !pg_ || pg_->rank() == 0; }

int64_t Trainer::world_size() const { return pg_ ? pg_->world_size() : 1; }

double Trainer::mean_over_ranks(double local) { return pg_ ? pg_->sum(local) / static_cast<double>(world_size()) : local; }

ModelOutput Trainer::forward(const Batch& batch, std::optional<double> num_items_in_batch) {
  const at::ScalarType dtype = args_.fp16 ? at::kHalf : args_.bf16 ? at::kBFloat16 : at::kFloat;
  compat::AutocastGuard autocast(batch.at("input_ids").device().type(), dtype);  // a no-op for float32
  if (args_.label_smoothing_factor == 0 || !batch.count("labels")) return model_->forward(batch, num_items_in_batch);
  // HF's compute_loss: the labels go to the LabelSmoother instead of the model (in training
  // and evaluation alike), shifted for a causal LM.
  Batch inputs = batch;
  inputs.erase("labels");
  ModelOutput out = model_->forward(inputs, num_items_in_batch);
  out.loss = label_smoothed_loss(out.logits, batch.at("labels"), args_.label_smoothing_factor,
                                 model_->task() == ModelTask::kCausalLM, num_items_in_batch);
  return out;
}

// The epoch's batch order: HF's random sampler (accelerate's seeding), sequential, or
// LengthGroupedSampler, whose megabatches span train_batch_size * GA examples; in a data
// parallel run, this rank's share of it (accelerate's BatchSamplerShard).
BatchSampler Trainer::train_sampler(int64_t data_seed, int64_t epoch) const {
  const int64_t n = data_.train->size(), bs = args_.train_batch_size();
  auto all = [&] {
    switch (args_.train_sampling_strategy) {
      case TrainSampling::kSequential: return BatchSampler(at::arange(n, at::kLong), bs, args_.dataloader_drop_last);
      case TrainSampling::kGroupByLength: {
        std::vector<int64_t> lengths(n);
        for (int64_t i = 0; i < n; ++i) lengths[i] = data_.train->length(i);
        return BatchSampler::length_grouped(lengths, bs, bs * args_.gradient_accumulation_steps,
                                            args_.dataloader_drop_last, data_seed, epoch);
      }
      case TrainSampling::kRandom: break;
    }
    return BatchSampler::random(n, bs, args_.dataloader_drop_last, data_seed, epoch);
  };
  return pg_ ? all().shard(pg_->rank(), pg_->world_size()) : all();
}

TrainPlan Trainer::plan() const {
  HFT_CHECK(data_.train != nullptr, "training needs a train dataset (data.train)");
  // A data parallel rank's dataloader is its shard of the batches.
  const int64_t batches = pg_ ? train_sampler(args_.data_seed.value_or(args_.seed), 0).size()
                              : BatchSampler::count(data_.train->size(), args_.train_batch_size(),
                                                    args_.dataloader_drop_last);
  HFT_CHECK(batches > 0, "the train set has {} windows, fewer than one batch of {} {}with drop_last",
            data_.train->size(), args_.train_batch_size(),
            pg_ ? fmt::format("for each of {} ranks ", world_size()) : std::string());
  return TrainPlan::make(batches, args_.gradient_accumulation_steps, args_.max_steps, args_.num_train_epochs);
}

ResumeExpect Trainer::resume_expect() const {
  return ResumeExpect{world_size(), args_.train_batch_size(), args_.gradient_accumulation_steps,
                      model_->hf_config()};
}

void Trainer::create_optimizer() {
  // HF's two groups: weight decay for all but biases and norm weights.
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = args_.learning_rate;
  decay.weight_decay = args_.weight_decay;
  for (const auto& p : model_->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    (model_->is_no_decay(p.key()) ? no_decay : decay).params.push_back(p.value());
  }
  std::vector<ParamGroup> groups{decay, no_decay};
  if (sharded_) groups = sharded_->shard_groups(groups);  // this rank's pieces of each group
  optimizer_ = optimizer_create(args_, std::move(groups));
  SchedulerOptions schedule = config_.scheduler;  // the kwargs, typed when the config was read
  schedule.num_warmup_steps = args_.get_warmup_steps(plan_.max_steps);
  schedule.num_training_steps = plan_.max_steps;
  scheduler_ = scheduler_create(*optimizer_, schedule);
}

}  // namespace hftrain
