// CRC-32 (zip's) against Python's zlib.crc32 and the check value; CRC-32C's two paths agree;
// zip_check accepts what Python's torch.save writes and refuses every flipped data byte.
#include "hftrain/io/crc32c.h"
#include "hftrain/io/pickle.h"
#include "hftrain/io/zip_check.h"

#include <ATen/core/Dict.h>
#include "test_util.h"

#include <fstream>
#include <random>

using hftrain::test::require_error;
using hftrain::test::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The bit-at-a-time definition of CRC-32C, independent of the tables and the instruction.
uint32_t crc32c_bitwise(const std::string& s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : s) {
    crc ^= ch;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

}  // namespace

TEST_CASE("crc32 has the check value and equals Python's zlib.crc32", "[unit][io]") {
  const std::string check = "123456789";
  CHECK(hftrain::io::crc32(check.data(), check.size()) == 0xCBF43926u);
  CHECK(hftrain::io::crc32("", 0) == 0u);
  TempDir dir("crc");
  std::string data(100003, '\0');
  std::mt19937 gen(7);
  for (char& c : data) c = static_cast<char>(gen());
  hftrain::test::write_bytes(dir.str() + "/data.bin", data);
  const auto py = hftrain::test::run_python(
      dir.str(), "import sys, zlib\nprint(zlib.crc32(open(sys.argv[1], 'rb').read()))\n", "'" + dir.str() + "/data.bin'");
  REQUIRE(py.exit_code == 0);
  CHECK(std::stoul(py.output) == hftrain::io::crc32(data.data(), data.size()));
  // In pieces, continued: the same.
  const uint32_t head = hftrain::io::crc32(data.data(), 777);
  CHECK(hftrain::io::crc32(data.data() + 777, data.size() - 777, head) == hftrain::io::crc32(data.data(), data.size()));
}

TEST_CASE("crc32c equals the bitwise definition at every length and alignment", "[unit][io]") {
  std::string data(300, '\0');
  std::mt19937 gen(11);
  for (char& c : data) c = static_cast<char>(gen());
  for (size_t start : {0, 1, 3, 7})
    for (size_t n : {0, 1, 7, 8, 9, 64, 255}) {
      const std::string piece = data.substr(start, n);
      CHECK(hftrain::io::crc32c(piece.data(), piece.size()) == crc32c_bitwise(piece));
    }
  const uint32_t head = hftrain::io::crc32c(data.data(), 100);
  CHECK(hftrain::io::crc32c(data.data() + 100, 200, head) == crc32c_bitwise(data));
}

TEST_CASE("zip_check accepts Python's torch.save and refuses each flipped data byte, naming the member",
          "[io][pickle][python]") {
  REQUIRE(hftrain::test::python_torch_available());
  TempDir dir("zip");
  const std::string path = dir.str() + "/optimizer.pt";
  const auto py = hftrain::test::run_python(dir.str(), R"(
import sys, torch
torch.manual_seed(0)
torch.save({"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(64)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}, sys.argv[1])
)", "'" + path + "'");
  REQUIRE(py.exit_code == 0);
  hftrain::io::zip_check(path);
  const std::string good = read_bytes(path);
  auto exp_avg = [](const c10::IValue& v) {
    return v.toGenericDict().at("state").toGenericDict().at(0).toGenericDict().at("exp_avg").toTensor();
  };
  const at::Tensor want = exp_avg(hftrain::io::pickle_load_file(path));
  // Every 13th byte flipped in turn: refused with the path named, or (a byte outside any
  // member's data and what the reader checks: a timestamp, padding) loaded unchanged.
  int refused = 0, tried = 0;
  for (size_t at = 0; at < good.size(); at += 13) {
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x04);
    hftrain::test::write_bytes(path, bad);
    ++tried;
    try {
      const c10::IValue v = hftrain::io::pickle_load_file(path);
      CHECK(exp_avg(v).equal(want));
    } catch (const hftrain::Error& e) {
      ++refused;
      CHECK(e.kind() == hftrain::Error::kUser);
      CHECK_THAT(e.what(), Catch::Contains(path));
    }
  }
  INFO(refused << " of " << tried << " flips refused");
  CHECK(refused * 2 > tried);
  hftrain::test::write_bytes(path, good.substr(0, good.size() - 30));
  require_error(hftrain::Error::kUser, [&] { hftrain::io::zip_check(path); }, {path});
}
