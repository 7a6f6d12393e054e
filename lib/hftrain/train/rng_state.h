// rng_state.pth: {"cpu": torch.get_rng_state()-compatible ByteTensor} (plus "cuda" when
// a GPU is used), as HF's Trainer saves it, written with torch::pickle_save. A run of several
// processes saves one file per rank, rng_state_{rank}.pth.
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace hftrain {

c10::IValue rng_state_capture();
void rng_state_restore(const c10::IValue& state, const std::string& where);

at::Tensor rng_state_cpu();                           // the CPU generator's state (uint8)
c10::IValue rng_state_from_cpu(const at::Tensor& cpu);  // the file's dict around such a state

// "rng_state.pth" for a single process, else "rng_state_{rank}.pth" (HF's names).
std::string rng_state_file(int64_t rank, int64_t world_size);
// How many processes saved checkpoint `dir`, from its RNG files (0 when it has none).
int64_t rng_state_world_size(const std::string& dir);
// A user error when checkpoint `dir` was saved by another number of processes.
void rng_state_check_world_size(const std::string& dir, int64_t world_size);

}  // namespace hftrain
