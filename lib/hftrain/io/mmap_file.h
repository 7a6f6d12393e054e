// Read-only memory maps of token files: a tensor over the mapped bytes, never read whole.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <string>

namespace hftrain::io {

// A whole file mapped read only, for the length of the object (an empty file maps nothing).
// A file that cannot be opened or mapped is a user error naming it.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return static_cast<const unsigned char*>(base_); }
  size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  size_t size_ = 0;
};

// Elements [offset, offset + count) of a file of little-endian `dtype` values (count < 0:
// to the end), as a CPU tensor viewing the mapping; the mapping lives as long as the tensor.
// A file whose size is not a multiple of the element size, or a range outside it, is a user
// error naming the file.
at::Tensor mmap_tensor(const std::string& path, at::ScalarType dtype, int64_t offset, int64_t count);

}  // namespace hftrain::io
