// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
// the raw little-endian tensor bytes. https://github.com/huggingface/safetensors
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace hftrain::io {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;  // CPU tensors, owning their memory
  std::map<std::string, std::string> metadata;
};

// Reads and validates the header before touching any data: header length inside the
// file, valid JSON, known dtypes, shape x itemsize == byte length, offsets inside the data
// section, no overlaps. Errors are user errors naming the file.
SafetensorsFile safetensors_load(const std::string& path);

// Writes atomically (temporary sibling + fsync + rename). Tensors are made contiguous on
// the CPU; names must be unique. metadata defaults to {"format": "pt"} as HF writes.
void safetensors_save(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace hftrain::io
