// Helpers shared by the tests: where the golden files are, and scratch directories.
#pragma once

#include "hftrain/core/error.h"

#include <c10/util/Logging.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

// c10/util/Logging.h defines a glog-style CHECK that replaces Catch's wherever it is read
// after catch.hpp (LibTorch 2.x's tensor headers read it). Having read both, Catch's CHECK is
// put back, for every test that includes this header.
#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace hftrain::test {

inline std::string golden(const std::string& rel) { return std::string(HFTRAIN_GOLDEN_DIR) + "/" + rel; }

nlohmann::json read_json(const std::string& path);

// A fresh empty directory under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag);
  ~TempDir();
  std::string str() const { return path.string(); }
};

constexpr const char* kSystemPython = HFTRAIN_PYTHON;  // Debian's python3 with python3-torch

// scripts/setup installs python3-torch, so a python3 without torch fails the test that
// needs it instead of letting it pass unseen.
inline bool python_torch_available() {
  static const bool ok =
      std::system((std::string(kSystemPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  INFO(kSystemPython << " cannot import torch: run scripts/setup");
  REQUIRE(ok);
  return ok;
}

struct CommandRun {
  int exit_code;       // the exit status; -1 when it did not exit normally
  std::string output;  // stdout and stderr together, for the failure message
};
using PythonRun = CommandRun;

// Runs a shell command, capturing stdout and stderr together.
CommandRun run_command(const std::string& cmd);

// Writes `script` to <dir>/check.py and runs it with `args` (already shell-quoted).
inline PythonRun run_python(const std::string& dir, const std::string& script,
                            const std::string& args = "") {
  std::string script_path = dir + "/check.py";
  std::ofstream(script_path) << script;
  return run_command(std::string(kSystemPython) + " '" + script_path + "' " + args);
}

// Runs `fn` and requires an hftrain::Error of `kind` whose message contains every phrase
// (the offending path among them).
inline void require_error(hftrain::Error::Kind kind, const std::function<void()>& fn,
                          const std::vector<std::string>& phrases) {
  bool thrown = false;
  try {
    fn();
  } catch (const hftrain::Error& e) {
    thrown = true;
    INFO("message: " << e.what());
    CHECK(e.kind() == kind);
    for (const auto& p : phrases) CHECK_THAT(e.what(), Catch::Matchers::Contains(p));
  }
  if (!thrown)
    FAIL("expected an hftrain::Error containing \"" << (phrases.empty() ? "" : phrases[0]) << "\"");
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace hftrain::test
