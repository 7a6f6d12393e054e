// rng_state.pth: {"cpu": torch.get_rng_state()-compatible ByteTensor} (plus "cuda" when
// a GPU is used), as HF's Trainer saves it, written with torch::pickle_save.
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace hftrain {

c10::IValue rng_state_capture();
void rng_state_restore(const c10::IValue& state, const std::string& where);

}  // namespace hftrain
