#include "hftrain/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "hftrain/core/error.h"

namespace hftrain::io {

namespace {

std::string errno_text() { return std::strerror(errno); }

// write(2) may write less than asked, or be interrupted; loop until all is out.
bool write_all(int fd, std::string_view bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

// Owns the temporary file until it has been renamed over the target: on any failure
// before that the descriptor is closed and the file removed, so nothing half-written stays.
struct TempFile {
  std::string path;
  int fd = -1;
  bool renamed = false;
  ~TempFile() {
    int saved = errno;  // keep the errno of the failure being reported
    if (fd >= 0) ::close(fd);
    if (!renamed) ::unlink(path.c_str());
    errno = saved;
  }
};

}  // namespace

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_runtime("cannot open {} to fsync: {}", path, errno_text());
  int rc = ::fsync(fd);
  std::string err = rc != 0 ? errno_text() : "";
  ::close(fd);
  if (rc != 0) fail_runtime("cannot fsync {}: {}", path, err);
}

void write_file_atomic_parts(const std::string& path, const std::vector<std::string_view>& parts) {
  std::filesystem::path target(path);
  std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    fail_runtime("cannot write {}: not a file path", path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";

  TempFile tmp;
  tmp.path = (dir / ("." + name + ".tmp." + std::to_string(::getpid()))).string();
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (tmp.fd < 0) fail_runtime("cannot write {}: {}", path, errno_text());
  for (std::string_view part : parts)
    if (!write_all(tmp.fd, part)) fail_runtime("cannot write {}: {}", path, errno_text());
  if (::fsync(tmp.fd) != 0) fail_runtime("cannot write {}: fsync: {}", path, errno_text());
  int fd = tmp.fd;
  tmp.fd = -1;
  // close can report a deferred write error (NFS), so it is checked like write.
  if (::close(fd) != 0) fail_runtime("cannot write {}: close: {}", path, errno_text());
  if (::rename(tmp.path.c_str(), path.c_str()) != 0)
    fail_runtime("cannot write {}: rename: {}", path, errno_text());
  tmp.renamed = true;
  // The rename is durable only once the directory entry is on disk.
  fsync_path(dir.string());
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic_parts(path, {bytes});
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read {}: {}", path, errno_text());
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot read {}: is a directory", path);
  }
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string err = errno_text();
      ::close(fd);
      fail_runtime("cannot read {}: {}", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace hftrain::io
