// torch pickles: the zip archive that Python's torch.save writes and torch.load reads.
// torch::pickle_save is the one LibTorch writer whose output Python loads as plain
// objects (dicts, lists, tensors); torch::save writes a TorchScript archive instead.
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace hftrain::io {

void pickle_save_file(const std::string& path, const c10::IValue& value);  // atomic
// Tensors load on the CPU, as torch.load(map_location="cpu"). What Python writes and LibTorch
// 1.13 cannot read (one-item dict and list opcodes, short LONG1 integers) is rewritten first
// (see pickle.cpp). drop_foreign: an object of a class outside torch (a NumPy array) loads as
// None instead of failing the whole file.
c10::IValue pickle_load_file(const std::string& path, bool drop_foreign = false);

}  // namespace hftrain::io
