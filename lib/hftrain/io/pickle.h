// torch pickles: the zip archive that Python's torch.save writes and torch.load reads.
// torch::pickle_save is the one LibTorch writer whose output Python loads as plain
// objects (dicts, lists, tensors); torch::save writes a TorchScript archive instead.
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace hftrain::io {

void pickle_save_file(const std::string& path, const c10::IValue& value);  // atomic
// Tensors load on the CPU, as torch.load(map_location="cpu"). Python's one-item dict and
// list opcodes, which LibTorch 1.13 lacks, are rewritten first (see pickle.cpp).
c10::IValue pickle_load_file(const std::string& path);

}  // namespace hftrain::io
