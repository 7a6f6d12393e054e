// Which fused CPU kernels the models and the optimizer use (config key `fused:`). Each one is
// tested against the unfused ATen path it replaces; turning one off gives that path back, for
// comparison and measurement. Process-wide, like LibTorch's own kernel switches
// (at::globalContext()'s allow_tf32 and friends): set once before training, read per forward.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace hftrain {

struct Fusions {
  // The LM head and its cross-entropy over row chunks, without the (tokens x vocab) float32
  // logits, their log-softmax and their gradient (training forwards of causal LMs).
  bool lm_head_loss = true;
  // Attention by blocks of query rows (kernels/attention.h): no (B,H,T,T) matrices kept, the
  // masked half of a causal model's skipped, the heads side by side on every core, and no
  // copies to split or merge them (training forwards without dropout).
  bool attention = true;
  // AdamW (adamw_torch, without amsgrad) in one pass over parameter, gradient and moments, on
  // every core (kernels/adamw_update.h).
  bool adamw = true;
  // The tanh GELU (gelu_new, gelu_pytorch_tanh) in one pass each way on every core, with a
  // vectorized tanh (kernels/gelu_tanh.h; training forwards).
  bool gelu = true;
  // A linear layer's backward products (input and weight gradients) side by side, one per core,
  // on two-core hosts (kernels/linear.h; training forwards).
  bool linear = true;
  // RMSNorm (the Llama family's, Gemma 2's) in one pass each way on every core
  // (kernels/rms_norm.h; training forwards).
  bool norm = true;
  // SwiGLU's silu(gate) * up (the Llama family's MLP) in one pass each way on every core,
  // silu(gate) made again in backward instead of kept (kernels/swiglu.h; training forwards).
  bool swiglu = true;
  bool operator==(const Fusions& o) const {
    return lm_head_loss == o.lm_head_loss && attention == o.attention && adamw == o.adamw && gelu == o.gelu &&
           linear == o.linear && norm == o.norm && swiglu == o.swiglu;
  }
};

// The switches in force (all on by default).
Fusions& fusions();

// The config's names of the switches, in order, for messages and `hftrain config`.
const std::vector<std::string>& fusion_names();

// `fused:` as given: true / false (all on / off) or a mapping of fusion_names() to booleans
// (unnamed ones stay on). A user error names the key, the value and `where`.
Fusions fusions_from_json(const nlohmann::json& v, const std::string& where);
nlohmann::json fusions_to_json(const Fusions& f);

// The Trainer's training forwards read only the loss. Within this scope (per thread) a model
// may leave ModelOutput::logits undefined, which lets it use the fused head loss.
class LossOnlyScope {
 public:
  LossOnlyScope();
  ~LossOnlyScope();
  LossOnlyScope(const LossOnlyScope&) = delete;
  LossOnlyScope& operator=(const LossOnlyScope&) = delete;

 private:
  bool previous_;
};
bool loss_only();

}  // namespace hftrain
