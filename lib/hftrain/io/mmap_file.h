// Read-only memory maps of token files: a tensor over the mapped bytes, never read whole.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace hftrain::io {

// Elements [offset, offset + count) of a file of little-endian `dtype` values (count < 0:
// to the end), as a CPU tensor viewing the mapping; the mapping lives as long as the tensor.
// A file whose size is not a multiple of the element size, or a range outside it, is a user
// error naming the file.
at::Tensor mmap_tensor(const std::string& path, at::ScalarType dtype, int64_t offset, int64_t count);

}  // namespace hftrain::io
