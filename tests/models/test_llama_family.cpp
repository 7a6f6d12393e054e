// The decoders people fine-tune beside Llama, against transformers 4.48.3 (tests/golden/models,
// "The model families users fine-tune today"): Qwen2 (q/k/v biases, tied, rope_theta 1e6),
// Mistral (a sliding window of 8 over sequences of 16), Phi-3 (fused qkv_proj and
// gate_up_proj, a padding row), Gemma 2 (soft-caps, four norms a layer, alternate windows), and
// Llama's rope_scaling llama3 (with
// head_dim given apart from hidden/heads) and linear. Each loads through model.pretrained as
// a user's run would, matches logits, loss and every gradient, and exports the same
// config.json and tensor names.
#include "hftrain/builtins.h"
#include "hftrain/io/safetensors.h"
#include "hftrain/models/gemma2.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/llama.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>

using hftrain::test::golden;
using hftrain::test::read_json;
using nlohmann::json;

namespace {

const char* const kFamilyCases[] = {"models/qwen2-clm/",         "models/mistral-clm/",       "models/phi3-clm/",
                                    "models/gemma2-clm/",        "models/llama-rope-llama3/", "models/llama-rope-linear/"};

std::shared_ptr<hftrain::Model> load_family(const std::string& dir) {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden(dir);
  return hftrain::model_create(opts);
}

}  // namespace

TEST_CASE("Qwen2, Mistral, Phi-3 and Llama with rope_scaling match transformers' logits, loss and gradients",
          "[models][llama]") {
  for (const std::string dir : kFamilyCases) {
    INFO(dir);
    auto model = load_family(dir);
    CHECK(model->model_type() == read_json(golden(dir + "config.json")).at("model_type"));
    hftrain::test::check_against_golden(*model, dir);
  }
}

TEST_CASE("Qwen2, Mistral, Phi-3 and rope-scaled Llama export the config.json and tensors transformers saved",
          "[models][llama][config]") {
  for (const std::string dir : kFamilyCases) {
    INFO(dir);
    const json want = read_json(golden(dir + "config.json"));
    if (want.at("model_type") == "gemma2")
      CHECK(hftrain::gemma2_config_to_json(hftrain::gemma2_config_from_json(want, dir)) == want);
    else
      CHECK(hftrain::llama_config_to_json(hftrain::llama_config_from_json(want, dir)) == want);
    auto model = load_family(dir);
    hftrain::test::TempDir out("family-export");
    hftrain::model_save_pretrained(*model, out.str());
    CHECK(read_json(out.str() + "/config.json") == want);
    std::vector<std::string> got;
    for (const auto& [name, t] : hftrain::io::safetensors_load(out.str() + "/model.safetensors").tensors)
      got.push_back(name);
    auto keys = read_json(golden(dir + "expected.json")).at("model_safetensors_keys").get<std::vector<std::string>>();
    std::sort(got.begin(), got.end());
    std::sort(keys.begin(), keys.end());
    CHECK(got == keys);
  }
}

TEST_CASE("the distinguishing features are what make the numbers: without them the logits move", "[models][llama]") {
  // The same weights with the feature off differ by about the README's amounts: Mistral's
  // window 0.34, llama3 scaling 0.0045, Gemma 2's window 5.8, final cap 30.9, attention cap 5.1.
  hftrain::register_builtins();
  for (const auto& [dir, key, change] : std::vector<std::tuple<std::string, std::string, double>>{
           {"models/mistral-clm/", "sliding_window", 0.3},
           {"models/llama-rope-llama3/", "rope_scaling", 0.004},
           {"models/gemma2-clm/", "sliding_window", 5.0},
           {"models/gemma2-clm/", "final_logit_softcapping", 30.0},
           {"models/gemma2-clm/", "attn_logit_softcapping", 5.0}}) {
    INFO(dir << " without " << key);
    json cfg = read_json(golden(dir + "config.json"));
    cfg[key] = nullptr;
    auto plain = hftrain::model_build(cfg.at("model_type").get<std::string>(), cfg, dir, false);
    hftrain::test::load_golden_weights(*plain, dir);
    const auto expected = hftrain::io::safetensors_load(golden(dir + "expected.safetensors")).tensors.at("logits");
    torch::NoGradGuard no_grad;
    const at::Tensor logits = plain->forward(hftrain::test::golden_batch(dir), std::nullopt).logits;
    CHECK(hftrain::test::max_abs_diff(logits, expected) > change);
  }
}

TEST_CASE("weight decay skips what HF's skips: Llama's norms and every bias; Qwen2's, Mistral's, Phi-3's and "
          "Gemma 2's norms are decayed, as their RMSNorm is not in ALL_LAYERNORM_LAYERS",
          "[models][llama]") {
  auto llama = load_family("models/llama-rope-linear/");
  CHECK(llama->is_no_decay("model.layers.0.input_layernorm.weight"));
  for (const std::string dir : {"models/qwen2-clm/", "models/mistral-clm/", "models/phi3-clm/", "models/gemma2-clm/"}) {
    INFO(dir);
    auto model = load_family(dir);
    CHECK_FALSE(model->is_no_decay("model.layers.0.input_layernorm.weight"));
    CHECK_FALSE(model->is_no_decay("model.norm.weight"));
    CHECK(model->is_no_decay("model.layers.0.self_attn.q_proj.bias"));
  }
}

TEST_CASE("a from-scratch Qwen2, Mistral or Phi-3 gets its family's defaults and class", "[models][llama][config]") {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.type = "qwen2";
  opts.config = {{"vocab_size", 64}, {"hidden_size", 32}, {"intermediate_size", 48}, {"num_hidden_layers", 1},
                 {"num_attention_heads", 4}, {"num_key_value_heads", 2}};
  auto qwen = hftrain::model_create(opts);
  CHECK(qwen->hf_config().at("architectures") == json::array({"Qwen2ForCausalLM"}));
  CHECK(qwen->named_parameters().contains("model.layers.0.self_attn.q_proj.bias"));
  CHECK_FALSE(qwen->named_parameters().contains("model.layers.0.self_attn.o_proj.bias"));
  CHECK(qwen->hf_config().at("max_window_layers") == 28);
  opts.type = "mistral";
  auto mistral = hftrain::model_create(opts);
  CHECK(mistral->hf_config().at("architectures") == json::array({"MistralForCausalLM"}));
  CHECK(mistral->hf_config().at("sliding_window") == 4096);
  // Phi3Config pads with id 32000: a smaller vocabulary needs its own, as in transformers.
  opts.type = "phi3";
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::model_create(opts); },
                               {"pad_token_id", "32000", "vocab_size 64"});
  opts.config["pad_token_id"] = 0;
  auto phi3 = hftrain::model_create(opts);
  CHECK(phi3->named_parameters().contains("model.layers.0.self_attn.qkv_proj.weight"));
  CHECK(phi3->named_parameters().contains("model.layers.0.mlp.gate_up_proj.weight"));
  opts.type = "mistral";
  opts.config.erase("pad_token_id");
  opts.config["slidng_window"] = 8;
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::model_create(opts); },
                               {"slidng_window", "did you mean \"sliding_window\""});
}

TEST_CASE("dynamic rope scaling is the default rope within max_position_embeddings, as rope_utils computes it",
          "[models][llama]") {
  const std::string dir = "models/llama-rope-linear/";
  json cfg = read_json(golden(dir + "config.json"));
  cfg["rope_scaling"] = nullptr;
  auto plain = std::make_unique<hftrain::LlamaForCausalLM>(hftrain::llama_config_from_json(cfg, dir));
  cfg["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 4.0}};
  auto dynamic = std::make_unique<hftrain::LlamaForCausalLM>(hftrain::llama_config_from_json(cfg, dir));
  hftrain::test::load_golden_weights(*plain, dir);
  hftrain::test::load_golden_weights(*dynamic, dir);
  torch::NoGradGuard no_grad;
  const auto batch = hftrain::test::golden_batch(dir);
  CHECK(dynamic->forward(batch, std::nullopt).logits.equal(plain->forward(batch, std::nullopt).logits));
  CHECK(hftrain::llama_config_to_json(dynamic->config()).at("rope_scaling").at("rope_type") == "dynamic");
  cfg["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::llama_config_from_json(cfg, "c.json"); },
                               {"c.json", "yarn", "dynamic"});
}
