// HF's spellings of sharded data parallel, mapped to hftrain's ZeRO stages (dist/sharded.h):
//   fsdp: "shard_grad_op" -> 2, "full_shard" -> 3, "no_shard" -> plain data parallel, with
//   "auto_wrap" (hftrain always wraps per transformer block) and fsdp_config's keys;
//   deepspeed: a ZeRO config (a mapping, its JSON text, or a .json file) -> its
//   zero_optimization.stage, with its "auto" values and its batch, accumulation, clipping and
//   precision settings checked against the arguments as HF's HfTrainerDeepSpeedConfig does.
// What hftrain cannot do (NVMe offload, hybrid sharding, sharded state dicts, DeepSpeed's own
// schedulers) is refused with the reason; tuning knobs of the other engines have no effect.
#pragma once

#include "hftrain/config/fields_rules.h"

namespace hftrain {

// Sets a.zero_stage (and gradient_checkpointing for fsdp_config's activation_checkpointing).
void resolve_sharding(TrainingArguments& a, const Ctx& c);

}  // namespace hftrain
