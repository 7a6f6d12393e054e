#include "test_util.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>

namespace hftrain::test {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

TempDir::TempDir(const std::string& tag) {
  std::random_device rd;
  path = std::filesystem::temp_directory_path() / ("hftrain-test-" + tag + "-" + std::to_string(rd()));
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

CommandRun run_command(const std::string& cmd) {
  CommandRun run{-1, ""};
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return run;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) run.output.append(buf, n);
  int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

}  // namespace hftrain::test
