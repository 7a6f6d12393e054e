// LlamaForCausalLM against transformers 4.48.3: golden/models/llama-clm (untied, grouped-query
// attention with 2 KV heads for 4 query heads) and llama-clm-tied.
#include "hftrain/builtins.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/llama.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

using hftrain::test::golden;
using hftrain::test::read_json;
using nlohmann::json;

namespace {

std::unique_ptr<hftrain::LlamaForCausalLM> load_llama(const std::string& dir) {
  auto config = hftrain::llama_config_from_json(read_json(golden(dir + "config.json")), dir + "config.json");
  auto model = std::make_unique<hftrain::LlamaForCausalLM>(config);
  hftrain::test::load_golden_weights(*model, dir);
  return model;
}

}  // namespace

TEST_CASE("Llama forward and backward match transformers' logits, loss and gradients, tied and untied",
          "[models][llama]") {
  for (const std::string dir : {"models/llama-clm/", "models/llama-clm-tied/"}) {
    INFO(dir);
    auto model = load_llama(dir);
    hftrain::test::check_against_golden(*model, dir);
  }
}

TEST_CASE("Llama parameters are the tensors save_pretrained stored, tied lm_head an alias", "[models][llama]") {
  for (const std::string dir : {"models/llama-clm/", "models/llama-clm-tied/"}) {
    INFO(dir);
    auto model = load_llama(dir);
    json expected = read_json(golden(dir + "expected.json"));
    auto want = expected.at("model_safetensors_keys").get<std::vector<std::string>>();
    std::vector<std::string> got;
    for (const auto& p : model->named_parameters()) got.push_back(p.key());
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    CHECK(got == want);
    std::vector<std::string> aliases;
    for (const auto& [k, _] : expected.at("tied_state_dict_aliases").items()) aliases.push_back(k);
    CHECK(model->tied_aliases() == aliases);
    CHECK(model->named_buffers().size() == 0);
    CHECK(model->is_no_decay("model.layers.0.input_layernorm.weight"));
    CHECK(model->is_no_decay("model.norm.weight"));
    CHECK_FALSE(model->is_no_decay("model.layers.0.self_attn.k_proj.weight"));
  }
}

TEST_CASE("llama_config_to_json(llama_config_from_json(config.json)) reproduces transformers' config.json",
          "[models][llama][config]") {
  for (const std::string path : {"models/llama-clm/config.json", "models/llama-clm-tied/config.json"}) {
    INFO(path);
    json want = read_json(golden(path));
    json got = hftrain::llama_config_to_json(hftrain::llama_config_from_json(want, path));
    CHECK(got == want);
  }
}

TEST_CASE("a Llama model directory loads through model.pretrained and trains through the registry",
          "[models][llama]") {
  hftrain::register_builtins();
  for (const std::string dir : {"models/llama-clm/", "models/llama-clm-tied/"}) {
    INFO(dir);
    hftrain::ModelOptions opts;
    opts.pretrained = golden(dir);
    auto model = hftrain::model_create(opts);
    CHECK(model->model_type() == "llama");
    hftrain::test::check_against_golden(*model, dir);
  }
  hftrain::test::TempDir out("llama-export");
  hftrain::ModelOptions opts;
  opts.pretrained = golden("models/llama-clm-tied/");
  auto model = hftrain::model_create(opts);
  hftrain::model_save_pretrained(*model, out.str());
  auto file = hftrain::io::safetensors_load(out.str() + "/model.safetensors");
  CHECK(file.tensors.size() == 20);  // lm_head is embed_tokens: not stored, as save_pretrained
  CHECK(read_json(out.str() + "/config.json") == read_json(golden("models/llama-clm-tied/config.json")));
}

TEST_CASE("a model directory stored in bfloat16 loads as float32, as from_pretrained loads it, and exports float32",
          "[models][llama]") {
  hftrain::register_builtins();
  const std::string dir = "models/llama-bf16-weights/";
  REQUIRE(read_json(golden(dir + "expected.json")).at("model_safetensors_dtypes") == json::array({"bfloat16"}));
  for (const auto& [name, t] : hftrain::io::safetensors_load(golden(dir + "model.safetensors")).tensors)
    REQUIRE(t.scalar_type() == at::kBFloat16);
  hftrain::ModelOptions opts;
  opts.pretrained = golden(dir);
  auto model = hftrain::model_create(opts);
  for (const auto& p : model->named_parameters()) CHECK(p.value().scalar_type() == at::kFloat);
  hftrain::test::check_against_golden(*model, dir);
  hftrain::test::TempDir out("bf16-export");
  hftrain::model_save_pretrained(*model, out.str());
  auto file = hftrain::io::safetensors_load(out.str() + "/model.safetensors");
  for (const auto& [name, t] : file.tensors) CHECK(t.scalar_type() == at::kFloat);
  CHECK(read_json(out.str() + "/config.json").at("torch_dtype") == "float32");
}

TEST_CASE("beyond max_shard_size the weights are sharded as save_pretrained shards them, and load back",
          "[models][llama]") {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden("models/llama-clm/");
  auto model = hftrain::model_create(opts);
  hftrain::test::TempDir out("shards");
  hftrain::test::write_bytes(out.str() + "/model.safetensors", "an earlier run's weights");
  // 16 KB shards: the 76,800-byte embedding and lm_head (300 x 64 floats) exceed the limit and
  // get shards of their own, as huggingface_hub's split puts them, ahead of the shard being filled.
  hftrain::SaveWeights how;
  how.max_shard_size = hftrain::parse_file_size("16KB", "max_shard_size");
  REQUIRE(how.max_shard_size == 16000);
  hftrain::model_save_pretrained(*model, out.str(), how);
  CHECK_FALSE(std::filesystem::exists(out.str() + "/model.safetensors"));  // the stale file is gone
  const json index = read_json(out.str() + "/model.safetensors.index.json");
  int64_t total = 0;
  std::set<std::string> files;
  for (const auto& p : model->named_parameters()) {
    total += p.value().numel() * 4;
    files.insert(index.at("weight_map").at(p.key()).get<std::string>());
  }
  CHECK(index.at("metadata").at("total_size") == total);
  CHECK(index.at("weight_map").at("model.embed_tokens.weight") == "model-00001-of-" + fmt::format("{:05d}", files.size()) + ".safetensors");
  for (const std::string& f : files) {  // one tensor over the limit, or several within it
    const auto shard = hftrain::io::safetensors_load(out.str() + "/" + f).tensors;
    int64_t bytes = 0;
    for (const auto& [name, t] : shard) bytes += t.numel() * 4;
    CHECK((shard.size() == 1 || bytes <= 16000));
  }
  CHECK(files.size() > 2);
  hftrain::ModelOptions again;
  again.pretrained = out.str();
  auto loaded = hftrain::model_create(again);
  for (const auto& p : model->named_parameters()) CHECK(loaded->named_parameters()[p.key()].equal(p.value()));
  // Back to one file: the shards and the index go.
  hftrain::SaveWeights bf16;
  bf16.torch_dtype = "bfloat16";
  hftrain::model_save_pretrained(*model, out.str(), bf16);
  CHECK_FALSE(std::filesystem::exists(out.str() + "/model.safetensors.index.json"));
  CHECK(std::filesystem::exists(out.str() + "/model.safetensors"));
  for (const auto& [name, t] : hftrain::io::safetensors_load(out.str() + "/model.safetensors").tensors)
    CHECK(t.scalar_type() == at::kBFloat16);
  CHECK(read_json(out.str() + "/config.json").at("torch_dtype") == "bfloat16");
  size_t left = 0;
  for (const auto& e : std::filesystem::directory_iterator(out.path)) left += e.path().filename().string().rfind("model-", 0) == 0;
  CHECK(left == 0);
  hftrain::test::require_error(hftrain::Error::kUser, [] { hftrain::parse_file_size("5 parsecs", "model.max_shard_size"); },
                               {"model.max_shard_size", "5 parsecs"});
  CHECK(hftrain::parse_file_size("2GiB", "m") == 2147483648LL);
  CHECK(hftrain::parse_file_size("5Gb", "m") == 625000000LL);  // transformers: a lowercase b is bits
}

TEST_CASE("bad Llama configs name the key and the value", "[models][llama][config]") {
  using hftrain::test::require_error;
  json base = read_json(golden("models/llama-clm/config.json"));
  auto with = [&](const std::string& key, const json& v) {
    json j = base;
    j[key] = v;
    return j;
  };
  require_error(hftrain::Error::kUser, [&] { hftrain::llama_config_from_json(with("num_key_value_heads", 3), "c.json"); },
                {"c.json", "num_attention_heads", "num_key_value_heads 3"});
  require_error(hftrain::Error::kUser,
                [&] { hftrain::llama_config_from_json(with("rope_scaling", {{"rope_type", "yarn"}}), "c.json"); },
                {"c.json", "rope_scaling", "yarn"});
  require_error(hftrain::Error::kUser, [&] { hftrain::llama_config_from_json(with("rms_norm_eps", "x"), "c.json"); },
                {"c.json", "\"rms_norm_eps\"", "a number"});
  require_error(hftrain::Error::kUser,
                [&] { hftrain::llama_config_from_json(with("rope_thetta", 1e4), "c.json", /*strict=*/true); },
                {"c.json", "rope_thetta", "did you mean \"rope_theta\""});
}
