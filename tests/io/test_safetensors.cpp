// safetensors.h brings glog's CHECK: included before Catch, so that Catch's CHECK is the one defined.
#include "hftrain/io/safetensors.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>

using hftrain::Error;
using hftrain::test::require_error;
using hftrain::test::TempDir;
namespace io = hftrain::io;

namespace {

// A file as the format lays it out: 8-byte little-endian length, header text, data.
std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\x01');
}

at::Tensor ints(const std::vector<int64_t>& v, at::ScalarType type) {
  return at::tensor(v, at::kLong).to(type);
}

at::Tensor floats(const std::vector<double>& v, at::ScalarType type) {
  return at::tensor(v, at::kDouble).to(type);
}

}  // namespace

TEST_CASE("safetensors_load reads the GPT-2 checkpoint that transformers' save_pretrained wrote",
          "[io][safetensors]") {
  std::string path = hftrain::test::golden("models/gpt2-clm/model.safetensors");
  auto expected = hftrain::test::read_json(hftrain::test::golden("models/gpt2-clm/expected.json"));
  auto want = expected.at("model_safetensors_keys").get<std::vector<std::string>>();
  std::sort(want.begin(), want.end());

  io::SafetensorsFile file = io::safetensors_load(path);
  std::vector<std::string> got;
  for (const auto& [name, t] : file.tensors) got.push_back(name);
  CHECK(got == want);
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(file.tensors.at("transformer.wte.weight").sizes().vec() == std::vector<int64_t>{300, 64});
  CHECK(file.tensors.at("transformer.h.0.attn.c_attn.weight").sizes().vec() ==
        std::vector<int64_t>{64, 192});
  for (const auto& [name, t] : file.tensors) CHECK(t.scalar_type() == at::kFloat);
}

TEST_CASE("safetensors_load gives the same values as a Python parse of the GPT-2 checkpoint",
          "[io][safetensors][python]") {
  if (!hftrain::test::python_torch_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  std::string path = hftrain::test::golden("models/gpt2-clm/model.safetensors");
  TempDir dir("safetensors");
  // Python reads the file with json + struct + torch.frombuffer, not through our loader.
  auto run = hftrain::test::run_python(dir.str(), R"PY(
import json, struct, sys, torch
raw = open(sys.argv[1], 'rb').read()
n, = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
header.pop('__metadata__', None)
data = bytearray(raw[8 + n:])
out = {}
for name, info in header.items():
    b, e = info['data_offsets']
    t = torch.frombuffer(data[b:e], dtype=torch.float32).reshape(info['shape']).double()
    out[name] = [t.sum().item(), t.abs().sum().item(), t.reshape(-1)[-1].item()]
json.dump(out, open(sys.argv[2], 'w'))
)PY",
                                       "'" + path + "' '" + dir.str() + "/sums.json'");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  auto sums = hftrain::test::read_json(dir.str() + "/sums.json");

  io::SafetensorsFile file = io::safetensors_load(path);
  REQUIRE(sums.size() == file.tensors.size());
  for (const auto& [name, t] : file.tensors) {
    INFO(name);
    at::Tensor d = t.to(at::kDouble);
    CHECK(d.sum().item<double>() == Approx(sums.at(name)[0].get<double>()).epsilon(1e-12));
    CHECK(d.abs().sum().item<double>() == Approx(sums.at(name)[1].get<double>()).epsilon(1e-12));
    CHECK(d.reshape({-1})[-1].item<double>() == sums.at(name)[2].get<double>());
  }
}

TEST_CASE(
    "safetensors_save writes every dtype so that Python reads back the same header and values",
    "[io][safetensors][python]") {
  if (!hftrain::test::python_torch_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  TempDir dir("safetensors");
  std::string path = dir.str() + "/model.safetensors";
  // The same values appear as literals in the Python script below.
  io::NamedTensors tensors = {
      {"f64", floats({1.5, -2.0, 3.25}, at::kDouble)},
      {"f32", floats({0.5, -0.25, 1e-8, 3.5, -4.0, 1e30}, at::kFloat).reshape({2, 3})},
      {"f16", floats({0.5, -1.0, 65504.0}, at::kHalf)},
      {"bf16", floats({1.0, -2.5, 256.0}, at::kBFloat16)},
      {"i64", ints({-(int64_t(1) << 40), 0, 7}, at::kLong)},
      {"i32", ints({-5, 100000}, at::kInt)},
      {"i16", ints({-300, 300}, at::kShort)},
      {"i8", ints({-128, 127, 1}, at::kChar)},
      {"u8", ints({0, 255, 17}, at::kByte)},
      {"bool", ints({1, 0, 1}, at::kBool)},
      // Non-contiguous: saved in its logical (transposed) order.
      {"transposed", floats({1, 2, 3, 4, 5, 6}, at::kFloat).reshape({2, 3}).t()},
      {"scalar", floats({2.5}, at::kFloat).reshape({})},
      {"empty", at::zeros({0, 3}, at::kFloat)},
  };
  io::safetensors_save(path, tensors);

  auto run = hftrain::test::run_python(dir.str(), R"PY(
import json, struct, sys, torch
expected = {
    'f64': ('F64', [3], torch.tensor([1.5, -2.0, 3.25], dtype=torch.float64)),
    'f32': ('F32', [2, 3], torch.tensor([[0.5, -0.25, 1e-8], [3.5, -4.0, 1e30]],
                                        dtype=torch.float32)),
    'f16': ('F16', [3], torch.tensor([0.5, -1.0, 65504.0], dtype=torch.float16)),
    'bf16': ('BF16', [3], torch.tensor([1.0, -2.5, 256.0], dtype=torch.bfloat16)),
    'i64': ('I64', [3], torch.tensor([-(1 << 40), 0, 7], dtype=torch.int64)),
    'i32': ('I32', [2], torch.tensor([-5, 100000], dtype=torch.int32)),
    'i16': ('I16', [2], torch.tensor([-300, 300], dtype=torch.int16)),
    'i8': ('I8', [3], torch.tensor([-128, 127, 1], dtype=torch.int8)),
    'u8': ('U8', [3], torch.tensor([0, 255, 17], dtype=torch.uint8)),
    'bool': ('BOOL', [3], torch.tensor([True, False, True])),
    'transposed': ('F32', [3, 2], torch.tensor([[1., 4.], [2., 5.], [3., 6.]])),
    'scalar': ('F32', [], torch.tensor(2.5)),
    'empty': ('F32', [0, 3], torch.zeros(0, 3)),
}
dtypes = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
          'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
          'U8': torch.uint8, 'BOOL': torch.bool}
raw = open(sys.argv[1], 'rb').read()
n, = struct.unpack('<Q', raw[:8])
text = raw[8:8 + n].decode('utf-8')
# Padded with spaces to a multiple of 8, as the reference implementation writes it.
assert n % 8 == 0, n
assert len(text) - len(text.rstrip(' ')) < 8, repr(text)
header = json.loads(text)
assert header.pop('__metadata__') == {'format': 'pt'}, header
assert sorted(header) == sorted(expected), sorted(header)
data = bytearray(raw[8 + n:])
# The reference loader requires the tensors to tile the data section without gaps.
pos = 0
for b, e in sorted(tuple(v['data_offsets']) for v in header.values()):
    assert b == pos, (b, pos)
    pos = e
assert pos == len(data), (pos, len(data))
for name, (dtype, shape, want) in expected.items():
    info = header[name]
    assert info['dtype'] == dtype and info['shape'] == shape, (name, info)
    b, e = info['data_offsets']
    assert (8 + n + b) % want.element_size() == 0, (name, 'misaligned')
    if e == b:
        got = torch.empty(shape, dtype=dtypes[dtype])
    else:
        got = torch.frombuffer(data[b:e], dtype=dtypes[dtype]).reshape(shape)
    assert got.dtype == want.dtype and torch.equal(got, want), (name, got, want)
print('ok')
)PY",
                                       "'" + path + "'");
  INFO(run.output);
  CHECK(run.exit_code == 0);
}

TEST_CASE("safetensors_load returns what safetensors_save wrote, with its metadata",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  std::string path = dir.str() + "/x.safetensors";
  io::NamedTensors tensors = {
      {"b.weight", floats({1, 2, 3, 4, 5, 6}, at::kFloat).reshape({3, 2})},
      {"a.mask", ints({1, 0}, at::kBool)},
      {"c.ids", ints({-1, 9}, at::kLong)},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "résumé"}};
  io::safetensors_save(path, tensors, meta);
  io::SafetensorsFile file = io::safetensors_load(path);
  CHECK(file.metadata == meta);
  REQUIRE(file.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const at::Tensor& got = file.tensors.at(name);
    CHECK(got.scalar_type() == t.scalar_type());
    CHECK(got.sizes() == t.sizes());
    CHECK(at::equal(got, t));
  }
}

TEST_CASE("safetensors_save rejects a duplicated tensor name as a runtime error",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  std::string path = dir.str() + "/dup.safetensors";
  io::NamedTensors tensors = {{"w", at::zeros({2})}, {"w", at::ones({2})}};
  require_error(Error::kRuntime, [&] { io::safetensors_save(path, tensors); }, {path, "\"w\""});
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("safetensors_load rejects a malformed file with a user error naming it",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  std::string path = dir.str() + "/bad.safetensors";
  auto rejects = [&](const std::string& bytes, const std::string& phrase) {
    hftrain::test::write_bytes(path, bytes);
    require_error(Error::kUser, [&] { io::safetensors_load(path); },
                  {path, "invalid safetensors header", phrase});
  };
  const std::string one_f32 = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

  SECTION("a file shorter than the 8-byte length") {
    rejects(safetensors_bytes(one_f32, 8).substr(0, 5), "too short");
  }
  SECTION("a header length past the end of the file") {
    rejects(safetensors_bytes(one_f32, 8).substr(0, 8 + one_f32.size() - 1), "past the end");
  }
  SECTION("a header length above the 100 MB limit") {
    std::string bytes(8, '\0');
    uint64_t n = 100'000'008;
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    hftrain::test::write_bytes(path, bytes);
    std::filesystem::resize_file(path, 8 + n);  // sparse: costs no disk
    require_error(Error::kUser, [&] { io::safetensors_load(path); },
                  {path, "invalid safetensors header", "exceeds the limit"});
  }
  SECTION("a header that is not JSON") {
    rejects(safetensors_bytes("{\"w\": [", 0), "not valid JSON");
  }
  SECTION("a header that is not a JSON object") {
    rejects(safetensors_bytes("[1, 2]  ", 0), "JSON object");
  }
  SECTION("an unknown dtype") {
    rejects(safetensors_bytes(R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
            "unknown dtype \"F33\"");
  }
  SECTION("a negative dimension") {
    rejects(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
            "non-negative");
  }
  SECTION("a missing data_offsets") {
    rejects(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", 8),
            "missing \"data_offsets\"");
  }
  SECTION("data_offsets with begin after end") {
    rejects(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
            "begin > end");
  }
  SECTION("data_offsets past the data section") {
    rejects(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
            "past the data section");
  }
  SECTION("a shape whose byte size differs from data_offsets") {
    rejects(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12),
            "needs 3 x 4 bytes");
  }
  SECTION("two tensors whose bytes overlap") {
    rejects(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12),
            "overlap");
  }
  SECTION("metadata that is not a string map") {
    rejects(safetensors_bytes(R"({"__metadata__":{"format":1}})", 0), "__metadata__");
  }
}

TEST_CASE("safetensors_load of a missing file is a user error naming it", "[io][safetensors]") {
  TempDir dir("safetensors");
  std::string path = dir.str() + "/missing.safetensors";
  require_error(Error::kUser, [&] { io::safetensors_load(path); }, {path, "No such file"});
}

TEST_CASE("mutated safetensors files load or are refused with a user error, never read out of bounds",
          "[io][safetensors]") {
  // A deterministic fuzz: byte flips, truncations, random header lengths and spliced JSON
  // over a valid two-tensor file. Every outcome must be a clean load whose tensors lie inside
  // the file, or hftrain::Error of kind kUser.
  TempDir dir("safetensors-fuzz");
  const std::string path = dir.str() + "/f.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"I64","shape":[1],"data_offsets":[16,24]},"__metadata__":{"k":"v"}})";
  const std::string valid = safetensors_bytes(header, 24);
  uint64_t state = 0x2545F4914F6CDD1Dull;
  auto next = [&] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  const char* splices[] = {"-1", "1e300", "18446744073709551615", "\"F16\"", "[]", "{}", "null", "\"\\u0000\"", "[0,99999999999]"};
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = valid;
    const int kind = static_cast<int>(next() % 4);
    if (kind == 0) {
      for (int k = 0; k < 1 + static_cast<int>(next() % 4); ++k) bytes[next() % bytes.size()] ^= static_cast<char>(1 + next() % 255);
    } else if (kind == 1) {
      bytes.resize(next() % bytes.size());
    } else if (kind == 2) {
      const uint64_t n = next() % (bytes.size() + 64);
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    } else {
      const size_t at = 8 + next() % header.size(), len = next() % 6;
      bytes.replace(at, std::min(len, bytes.size() - at), splices[next() % 9]);
      const uint64_t n = header.size() + (bytes.size() - valid.size());
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    }
    hftrain::test::write_bytes(path, bytes);
    try {
      io::SafetensorsFile f = io::safetensors_load(path);
      for (const auto& [name, t] : f.tensors) CHECK(t.nbytes() <= bytes.size());
      ++loaded;
    } catch (const Error& e) {
      INFO("iteration " << iter << ": " << e.what());
      CHECK(e.kind() == Error::kUser);
      ++refused;
    }
  }
  CHECK(refused > 1000);  // the mutations do reach the checks
  CHECK(loaded > 0);      // and flips inside the data section still load
}
