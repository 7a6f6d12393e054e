#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "hftrain/io/atomic_file.h"
#include "test_util.h"
#include "test_util.h"

using hftrain::Error;
using hftrain::test::require_error;
using hftrain::test::TempDir;
namespace io = hftrain::io;
namespace fs = std::filesystem;

namespace {

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("write_file_atomic replaces the content and leaves no temporary file",
          "[io][atomic_file]") {
  TempDir dir("atomic");
  std::string path = dir.str() + "/state.json";
  hftrain::test::write_bytes(path, "old content that is longer than the new one");

  io::write_file_atomic(path, "new");
  CHECK(slurp(path) == "new");
  io::write_file_atomic_parts(path, {"two ", "", "parts"});
  CHECK(slurp(path) == "two parts");
  CHECK(entries(dir.path) == std::set<std::string>{"state.json"});
}

TEST_CASE("write_file_atomic keeps embedded NUL bytes", "[io][atomic_file]") {
  TempDir dir("atomic");
  std::string path = dir.str() + "/bin";
  const std::string bytes("a\0b\0\xff", 5);
  io::write_file_atomic(path, bytes);
  CHECK(slurp(path) == bytes);
  CHECK(io::read_file(path) == bytes);
}

TEST_CASE("write_file_atomic over a directory is a runtime error and leaves no temporary file",
          "[io][atomic_file]") {
  TempDir dir("atomic");
  std::string path = dir.str() + "/taken";
  fs::create_directories(path + "/child");  // rename(2) cannot replace a non-empty directory
  require_error(Error::kRuntime, [&] { io::write_file_atomic(path, "x"); }, {path, "rename"});
  CHECK(entries(dir.path) == std::set<std::string>{"taken"});
}

TEST_CASE("write_file_atomic into a missing directory is a runtime error naming the path",
          "[io][atomic_file]") {
  TempDir dir("atomic");
  std::string path = dir.str() + "/no/such/dir/file";
  require_error(Error::kRuntime, [&] { io::write_file_atomic(path, "x"); },
                {path, "No such file or directory"});
}

TEST_CASE("read_file of a missing file is a user error naming the path", "[io][atomic_file]") {
  TempDir dir("atomic");
  std::string path = dir.str() + "/missing.txt";
  require_error(Error::kUser, [&] { io::read_file(path); }, {path, "No such file or directory"});
}

TEST_CASE("fsync_path accepts a file and a directory", "[io][atomic_file]") {
  TempDir dir("atomic");
  std::string path = dir.str() + "/f";
  io::write_file_atomic(path, "x");
  CHECK_NOTHROW(io::fsync_path(path));
  CHECK_NOTHROW(io::fsync_path(dir.str()));
}
