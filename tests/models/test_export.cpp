// HF model directories in and out, for every golden architecture: an export has the files,
// config.json and tensors (names, dtypes, shapes) transformers' save_pretrained wrote; a
// sharded checkpoint (model.safetensors.index.json) loads like a single file.
#include "hftrain/io/safetensors.h"
#include "hftrain/builtins.h"
#include "hftrain/io/json_file.h"
#include "hftrain/models/hf_model_dir.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <filesystem>

using hftrain::test::golden;
using hftrain::test::read_json;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
const char* kCases[] = {"gpt2-clm", "gpt2-seqcls", "llama-clm", "llama-clm-tied", "bert-mlm", "bert-seqcls", "bert-tokcls"};

std::shared_ptr<hftrain::Model> from_dir(const std::string& dir) {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = dir;
  return hftrain::model_create(opts);
}
}  // namespace

TEST_CASE("an exported model directory has transformers' files, config.json and tensor names, dtypes and shapes",
          "[models][export]") {
  for (const char* name : kCases) {
    INFO(name);
    const std::string src = golden(std::string("models/") + name);
    hftrain::test::TempDir out("export");
    hftrain::model_save_pretrained(*from_dir(src), out.str());
    CHECK(fs::is_regular_file(out.str() + "/config.json"));
    CHECK(read_json(out.str() + "/config.json") == read_json(src + "/config.json"));
    auto want = hftrain::io::safetensors_load(src + "/model.safetensors").tensors;
    auto got = hftrain::io::safetensors_load(out.str() + "/model.safetensors").tensors;
    REQUIRE(got.size() == want.size());
    for (const auto& [key, t] : want) {
      INFO(key);
      REQUIRE(got.count(key));
      CHECK(got.at(key).scalar_type() == t.scalar_type());
      CHECK(got.at(key).sizes() == t.sizes());
      CHECK(got.at(key).equal(t));  // loaded and written back unchanged
    }
  }
}

TEST_CASE("a sharded checkpoint loads through its index, and a tensor missing from the shards is named",
          "[models][export]") {
  const std::string src = golden("models/llama-clm");
  hftrain::test::TempDir dir("sharded");
  fs::copy_file(src + "/config.json", dir.str() + "/config.json");
  auto tensors = hftrain::io::safetensors_load(src + "/model.safetensors").tensors;
  hftrain::io::NamedTensors first, second;
  json map = json::object();
  int i = 0;
  for (const auto& [name, t] : tensors) {
    const bool a = i++ % 2 == 0;
    (a ? first : second).emplace_back(name, t);
    map[name] = a ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  hftrain::io::safetensors_save(dir.str() + "/model-00001-of-00002.safetensors", first);
  hftrain::io::safetensors_save(dir.str() + "/model-00002-of-00002.safetensors", second);
  hftrain::io::write_json_file(dir.str() + "/model.safetensors.index.json", {{"metadata", json::object()}, {"weight_map", map}});
  auto model = from_dir(dir.str());
  hftrain::test::check_against_golden(*model, "models/llama-clm/");

  second.pop_back();  // its tensor is still in the weight_map, in the second shard
  hftrain::io::safetensors_save(dir.str() + "/model-00002-of-00002.safetensors", second);
  hftrain::test::require_error(hftrain::Error::kUser, [&] { from_dir(dir.str()); },
                               {"model.safetensors.index.json", "missing tensor", "model-00002-of-00002.safetensors"});
}

TEST_CASE("bad model input: an unknown model_type lists the known ones, a misshaped or stray tensor is named",
          "[models][export]") {
  hftrain::register_builtins();
  hftrain::test::TempDir dir("bad-model");
  const std::string src = golden("models/gpt2-clm");
  fs::copy_file(src + "/config.json", dir.str() + "/config.json");
  json cfg = read_json(src + "/config.json");
  cfg["model_type"] = "gpt3";
  hftrain::io::write_json_file(dir.str() + "/config.json", cfg);
  hftrain::test::require_error(hftrain::Error::kUser, [&] { from_dir(dir.str()); }, {"gpt3", "bert", "gpt2", "llama"});

  fs::copy_file(src + "/config.json", dir.str() + "/config.json", fs::copy_options::overwrite_existing);
  auto tensors = hftrain::io::safetensors_load(src + "/model.safetensors").tensors;
  hftrain::io::NamedTensors named(tensors.begin(), tensors.end());
  for (auto& [name, t] : named)
    if (name == "transformer.wpe.weight") t = t.slice(0, 0, 32);
  hftrain::io::safetensors_save(dir.str() + "/model.safetensors", named);
  hftrain::test::require_error(hftrain::Error::kUser, [&] { from_dir(dir.str()); },
                               {"model.safetensors", "transformer.wpe.weight", "shape [32,64]", "expects [64,64]"});
  named = hftrain::io::NamedTensors(tensors.begin(), tensors.end());
  named.emplace_back("transformer.h.9.attn.c_attn.weight", at::zeros({2}));
  hftrain::io::safetensors_save(dir.str() + "/model.safetensors", named);
  hftrain::test::require_error(hftrain::Error::kUser, [&] { from_dir(dir.str()); },
                               {"unexpected tensor \"transformer.h.9.attn.c_attn.weight\"", "gpt2"});
}
