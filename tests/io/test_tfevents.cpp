// TensorBoard event files: CRC-32C against published vectors, and records that the real
// protobuf library decodes (tests/io/decode_tfevents.py).
#include "hftrain/io/crc32c.h"
#include "hftrain/io/tfevents.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>

using hftrain::test::TempDir;

TEST_CASE("crc32c matches the published CRC-32C test vectors", "[unit][io]") {
  // RFC 3720 appendix B.4 and the common check value.
  const std::string check = "123456789";
  CHECK(hftrain::io::crc32c(check.data(), check.size()) == 0xE3069283u);
  unsigned char buf[32];
  std::fill(buf, buf + 32, 0x00);
  CHECK(hftrain::io::crc32c(buf, 32) == 0x8A9136AAu);
  std::fill(buf, buf + 32, 0xFF);
  CHECK(hftrain::io::crc32c(buf, 32) == 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  CHECK(hftrain::io::crc32c(buf, 32) == 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(31 - i);
  CHECK(hftrain::io::crc32c(buf, 32) == 0x113FDB5Cu);
}

TEST_CASE("event files decode as tensorflow.Event protos with scalar summaries", "[unit][io][python]") {
  REQUIRE(hftrain::test::python_torch_available());
  TempDir dir("tfevents");
  std::string path;
  {
    hftrain::io::EventWriter w(dir.str() + "/runs");
    path = w.path();
    w.add_scalar("train/loss", 2.5f, 1);
    w.add_scalar("train/learning_rate", 1e-3f, 1);
    w.add_scalar("eval/loss", 0.125f, 300);
  }
  auto run = hftrain::test::run_command(std::string(HFTRAIN_PYTHON) + " " + HFTRAIN_SOURCE_DIR +
                                        "/tests/io/decode_tfevents.py " + path);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  std::istringstream lines(run.output);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["tag"] == "train/loss");
  CHECK(rows[0]["value"] == 2.5);
  CHECK(rows[0]["step"] == 1);
  CHECK(rows[1]["value"].get<double>() == static_cast<double>(1e-3f));
  CHECK(rows[2]["tag"] == "eval/loss");
  CHECK(rows[2]["step"] == 300);
  CHECK(std::abs(rows[2]["wall_time"].get<double>() - static_cast<double>(std::time(nullptr))) < 60);
}
