// rng_state.pth, as HF's Trainer saves it: {"python": random.getstate(), "numpy":
// np.random.get_state(), "cpu": torch.get_rng_state(), "cuda": ... on a GPU}. hftrain draws
// nothing from Python's or NumPy's generators, so theirs are the states HF's set_seed(seed)
// leaves (random.seed(seed), np.random.seed(seed)); with them HF's _load_rng_state accepts the
// file. A run of several processes saves one file per rank, rng_state_{rank}.pth.
#pragma once

#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <string>

namespace hftrain {

// This process's rng_state_dict: "cuda", on a GPU, as HF saves it for a single process: the
// list of every visible GPU's state (torch.cuda.get_rng_state_all()).
c10::IValue rng_state_capture(c10::Device device, int64_t seed);
// Restores "cpu", and "cuda" when the run is on a GPU (a list: each GPU's; a tensor: this
// device's, as a data parallel rank saves it).
void rng_state_restore(const c10::IValue& state, const std::string& where, c10::Device device);

// The file's dict: "python" and "numpy" for `seed`, "cpu", and "cuda" unless `cuda` is None
// or an undefined tensor (on the CPU). A data parallel rank's gathered states: HF saves that
// rank's own GPU state as one tensor.
c10::IValue rng_state_dict(const at::Tensor& cpu, const c10::IValue& cuda, int64_t seed);

// random.getstate() after CPython's random.seed(seed): (3, (624 words, 624), None).
c10::IValue python_random_state(int64_t seed);
// np.random.get_state() after NumPy's legacy np.random.seed(seed mod 2^32):
// ("MT19937", the 624 words as a list, 624, 0, 0.0); np.random.set_state accepts the list.
c10::IValue numpy_random_state(int64_t seed);

// "rng_state.pth" for a single process, else "rng_state_{rank}.pth" (HF's names).
std::string rng_state_file(int64_t rank, int64_t world_size);
// How many processes saved checkpoint `dir`, from its RNG files (0 when it has none).
int64_t rng_state_world_size(const std::string& dir);

}  // namespace hftrain
