// Pre-tokenized token files: memory-mapped ranges, unsigned ids read back whole.
#include "hftrain/core/error.h"
#include "hftrain/data/dataset.h"
#include "hftrain/io/mmap_file.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <fstream>

using hftrain::test::TempDir;

namespace {
template <typename T>
std::string write_ids(const TempDir& dir, const std::vector<T>& ids) {
  const std::string path = dir.str() + "/tokens.bin";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(T));
  return path;
}
}  // namespace

TEST_CASE("uint16 and uint32 token files keep ids above the signed range", "[unit][data]") {
  TempDir dir("tokens");
  hftrain::DataOptions opts;
  opts.block_size = 2;
  opts.validation_split_percentage = 0;
  opts.train.format = hftrain::DatasetFormat::kTokens;
  opts.train.path = write_ids<uint16_t>(dir, {1, 65535, 40000, 7, 9});
  opts.train.dtype = hftrain::TokenDtype::kUint16;
  hftrain::ByteTokenizer tok;
  hftrain::DataLoad how;  // ids index a model's embeddings: a vocab of 65536 takes them all
  how.vocab_size = 65536;
  hftrain::Datasets ds = hftrain::datasets_load(opts, tok, how);
  REQUIRE(ds.train->size() == 2);  // 5 tokens: two windows of 2, the remainder dropped
  at::Tensor w = ds.train->collate(at::tensor({1, 0}, at::kLong)).at("input_ids");
  CHECK(w.scalar_type() == at::kLong);
  CHECK(w[0][0].item<int64_t>() == 40000);
  CHECK(w[1][1].item<int64_t>() == 65535);
  how.vocab_size = 65535;  // one short: the first id past it is named, read as unsigned
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::datasets_load(opts, tok, how); },
                               {"tokens.bin: token 1 is id 65535, not below the model's vocab_size 65535"});

  opts.train.path = write_ids<uint32_t>(dir, {4000000000u, 3, 2, 1});
  opts.train.dtype = hftrain::TokenDtype::kUint32;
  opts.train.offset = 1;
  opts.train.num_tokens = 2;
  ds = hftrain::datasets_load(opts, tok, how);
  REQUIRE(ds.train->size() == 1);
  CHECK(ds.train->collate(at::tensor({0}, at::kLong)).at("input_ids")[0][0].item<int64_t>() == 3);
}

TEST_CASE("a token range outside the file, or a ragged file, is a user error naming it", "[unit][data]") {
  TempDir dir("tokens-bad");
  const std::string path = write_ids<uint8_t>(dir, {1, 2, 3});
  CHECK_THROWS_WITH(hftrain::io::mmap_tensor(path, at::kByte, 2, 5), Catch::Contains(path));
  CHECK_THROWS_WITH(hftrain::io::mmap_tensor(path, at::kShort, 0, -1), Catch::Contains("whole number of 2-byte tokens"));
  CHECK(hftrain::io::mmap_tensor(path, at::kByte, 1, -1).numel() == 2);
}
