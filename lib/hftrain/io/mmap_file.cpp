#include "hftrain/io/mmap_file.h"

#include "hftrain/core/error.h"

#include <ATen/Functions.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hftrain::io {

MappedFile::MappedFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  HFT_CHECK(fd >= 0, "cannot open {}: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot stat {}: {}", path, std::strerror(err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    base_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base_ == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      base_ = nullptr;
      fail("cannot map {}: {}", path, std::strerror(err));
    }
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (base_) ::munmap(base_, size_);
}

at::Tensor mmap_tensor(const std::string& path, at::ScalarType dtype, int64_t offset, int64_t count) {
  int fd = ::open(path.c_str(), O_RDONLY);
  HFT_CHECK(fd >= 0, "cannot open {}: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("cannot stat {}: {}", path, std::strerror(errno));
  }
  const int64_t item = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t bytes = static_cast<int64_t>(st.st_size);
  if (bytes % item != 0 || offset < 0 || offset * item > bytes) {
    ::close(fd);
    fail("{}: {} bytes is not a whole number of {}-byte tokens, or offset {} is outside it", path, bytes, item, offset);
  }
  const int64_t available = bytes / item - offset;
  if (count < 0) count = available;
  if (count > available) {
    ::close(fd);
    fail("{}: {} tokens from offset {} requested, the file holds {}", path, count, offset, bytes / item);
  }
  if (count == 0) {
    ::close(fd);
    return at::empty({0}, at::TensorOptions().dtype(dtype));
  }
  void* base = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  HFT_CHECK(base != MAP_FAILED, "cannot map {}: {}", path, std::strerror(errno));
  const size_t length = static_cast<size_t>(bytes);
  auto* start = static_cast<char*>(base) + offset * item;
  // from_blob never writes through the pointer unless the tensor is written; ours are read only.
  return at::from_blob(start, {count}, [base, length](void*) { ::munmap(base, length); },
                       at::TensorOptions().dtype(dtype));
}

}  // namespace hftrain::io
