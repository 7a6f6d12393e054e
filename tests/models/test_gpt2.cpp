// GPT2LMHeadModel against transformers 4.48.3: golden/models/gpt2-clm (forward, loss,
// gradients, config.json, names) and golden/trainer (the Trainer's decay groups).
#include "hftrain/builtins.h"
#include "hftrain/models/gpt2.h"
#include "hftrain/models/hf_model_dir.h"

#include "hftrain/core/error.h"
#include "hftrain/io/safetensors.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

using hftrain::Error;
using hftrain::Gpt2Config;
using hftrain::Gpt2LMHeadModel;
using hftrain::test::golden;
using hftrain::test::read_json;
using nlohmann::json;

namespace {

const std::string kCase = "models/gpt2-clm/";

// A model built from an HF directory's config.json, with its model.safetensors loaded.
std::unique_ptr<Gpt2LMHeadModel> load_model(const std::string& dir, const std::string& activation = "") {
  Gpt2Config config = hftrain::gpt2_config_from_json(read_json(golden(dir + "config.json")), dir + "config.json");
  if (!activation.empty()) config.activation_function = activation;
  auto model = std::make_unique<Gpt2LMHeadModel>(config);
  hftrain::test::load_golden_weights(*model, dir);
  return model;
}

hftrain::Batch golden_batch() { return hftrain::test::golden_batch(kCase); }

std::vector<std::string> parameter_names(Gpt2LMHeadModel& model) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters()) names.push_back(item.key());
  return names;
}

}  // namespace

TEST_CASE("GPT-2 forward and backward on the golden batch match transformers' logits, loss and gradients",
          "[models][gpt2]") {
  auto model = load_model(kCase);
  hftrain::test::check_against_golden(*model, kCase);
}

TEST_CASE("GPT-2 loss with num_items_in_batch is the summed cross-entropy divided by it",
          "[models][gpt2]") {
  auto model = load_model(kCase);
  hftrain::Batch batch = golden_batch();
  const double mean = read_json(golden(kCase + "expected.json")).at("loss").get<double>();
  // label tokens after the causal shift: 15 + 10 + 12
  const int64_t tokens = batch.at("labels").slice(1, 1).ne(-100).sum().item<int64_t>();
  REQUIRE(tokens == 37);
  for (double n : {37.0, 50.0, 111.0}) {
    INFO("num_items_in_batch " << n);
    const double loss = model->forward(batch, n).loss.item<double>();
    CHECK(std::abs(loss - mean * tokens / n) < 1e-4 * tokens / n);
  }
  CHECK_FALSE(model->forward({{"input_ids", batch.at("input_ids")}}, std::nullopt).loss.defined());
}

TEST_CASE("GPT-2 named_parameters are the tensors save_pretrained stored, and no buffers",
          "[models][gpt2]") {
  auto model = load_model(kCase);
  auto want = read_json(golden(kCase + "expected.json")).at("model_safetensors_keys").get<std::vector<std::string>>();
  std::vector<std::string> got = parameter_names(*model);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  CHECK(got == want);
  CHECK(model->named_buffers().size() == 0);
  CHECK(model->named_parameters()["transformer.h.0.attn.c_attn.weight"].sizes().vec() == std::vector<int64_t>{64, 192});
  CHECK(model->named_parameters()["transformer.h.1.mlp.c_fc.weight"].sizes().vec() == std::vector<int64_t>{64, 256});
  CHECK(model->embedding_parameter_names() ==
        std::vector<std::string>{"transformer.wte.weight", "transformer.wpe.weight"});
}

TEST_CASE("GPT-2 parameter order and no-decay split match the Trainer's optimizer groups",
          "[models][gpt2]") {
  auto model = load_model("trainer/init/");
  json groups = read_json(golden("trainer/case.json")).at("derived").at("optimizer_groups");
  std::vector<std::string> decay, no_decay;
  for (const auto& name : parameter_names(*model)) (model->is_no_decay(name) ? no_decay : decay).push_back(name);
  CHECK(decay == groups.at(0).get<std::vector<std::string>>());
  CHECK(no_decay == groups.at(1).get<std::vector<std::string>>());
}

TEST_CASE("gpt2_config_to_json(gpt2_config_from_json(config.json)) reproduces transformers' config.json",
          "[models][gpt2][config]") {
  for (const std::string path : {"models/gpt2-clm/config.json", "trainer/init/config.json"}) {
    INFO(path);
    json want = read_json(golden(path));
    json got = hftrain::gpt2_config_to_json(hftrain::gpt2_config_from_json(want, path));
    for (const auto& [k, v] : want.items()) {
      INFO(k);
      REQUIRE(got.contains(k));
      CHECK(got.at(k) == v);
    }
    CHECK(got.size() == want.size());
  }
  // The seq-cls config keeps its id2label/label2id and pad_token_id; hftrain's model is
  // the LM head, so architectures names that.
  json want = read_json(golden("models/gpt2-seqcls/config.json"));
  Gpt2Config c = hftrain::gpt2_config_from_json(want, "seqcls");
  CHECK(c.pad_token_id == std::optional<int64_t>(0));
  json got = hftrain::gpt2_config_to_json(c);
  CHECK(got.at("architectures") == json::array({"GPT2LMHeadModel"}));
  got.erase("architectures");
  want.erase("architectures");
  CHECK(got == want);
}

TEST_CASE("gpt2_config_to_json writes HF's defaults for keys the input did not have", "[models][gpt2][config]") {
  Gpt2Config c;
  c.n_inner = 100;
  json j = hftrain::gpt2_config_to_json(c);
  CHECK(j.at("n_inner") == 100);
  CHECK(j.at("summary_first_dropout") == 0.1);
  CHECK(j.at("summary_activation").is_null());
  CHECK(j.at("use_cache") == true);
  CHECK_FALSE(j.contains("pad_token_id"));
  CHECK(j.at("vocab_size") == 50257);
  // HF's attribute_map names are read into GPT-2's own keys.
  Gpt2Config d = hftrain::gpt2_config_from_json(
      {{"hidden_size", 32}, {"num_attention_heads", 2}, {"num_hidden_layers", 3}, {"max_position_embeddings", 16}}, "x");
  CHECK(d.n_embd == 32);
  CHECK(d.n_head == 2);
  CHECK(d.n_layer == 3);
  CHECK(d.n_positions == 16);
  CHECK(d.other_keys.empty());
}

TEST_CASE("gpt2_config_from_json names the key, the expected type and the value it got",
          "[models][gpt2][config]") {
  using hftrain::test::require_error;
  json base = read_json(golden(kCase + "config.json"));
  auto with = [&](const std::string& key, const json& v) {
    json j = base;
    j[key] = v;
    return j;
  };
  auto from = [](const json& j) { return [j] { hftrain::gpt2_config_from_json(j, "cfg.json"); }; };
  require_error(Error::kUser, from(with("n_embd", 64.0)), {"cfg.json: key \"n_embd\" must be an integer, got 64.0"});
  require_error(Error::kUser, from(with("n_layer", "2")), {"cfg.json: key \"n_layer\" must be an integer, got \"2\""});
  require_error(Error::kUser, from(with("n_inner", 1.5)), {"key \"n_inner\" must be an integer or null, got 1.5"});
  require_error(Error::kUser, from(with("attn_pdrop", "0.1")), {"key \"attn_pdrop\" must be a number, got \"0.1\""});
  require_error(Error::kUser, from(with("scale_attn_weights", 1)), {"key \"scale_attn_weights\" must be true or false, got 1"});
  require_error(Error::kUser, from(with("activation_function", 3)), {"key \"activation_function\" must be a string, got 3"});
  require_error(Error::kUser, from(with("activation_function", "gelu_neww")),
                {"cfg.json", "unknown activation_function \"gelu_neww\"", "gelu_pytorch_tanh", "did you mean \"gelu_new\""});
  require_error(Error::kUser, from(with("model_type", "llama")), {"key \"model_type\" must be \"gpt2\", got \"llama\""});
  require_error(Error::kUser, from(with("n_head", 5)), {"key \"n_embd\" must be divisible by n_head (5), got 64"});
  require_error(Error::kUser, from(with("tie_word_embeddings", false)), {"tie_word_embeddings"});
  Gpt2Config c;
  c.activation_function = "swish";
  require_error(Error::kUser, [&] { Gpt2LMHeadModel m(c); }, {"unknown activation_function \"swish\""});
}

TEST_CASE("GPT-2 initialisation has HF's distributions: N(0, 0.02), c_proj scaled by 1/sqrt(2 n_layer), norms 1, biases 0",
          "[models][gpt2]") {
  // The golden model.safetensors is transformers' own fresh initialisation (seed 0).
  at::manual_seed(1);
  Gpt2LMHeadModel model(hftrain::gpt2_config_from_json(read_json(golden(kCase + "config.json")), "config.json"));
  auto ref = hftrain::io::safetensors_load(golden(kCase + "model.safetensors")).tensors;
  for (const auto& item : model.named_parameters()) {
    INFO(item.key());
    const at::Tensor& got = item.value();
    const at::Tensor& want = ref.at(item.key());
    REQUIRE(got.sizes() == want.sizes());
    if (got.dim() == 1) {
      CHECK(at::equal(got, want));  // zeros and ones
    } else {
      const double s_got = got.std().item<double>(), s_want = want.std().item<double>();
      CHECK(std::abs(s_got - s_want) < 0.1 * s_want);
      CHECK(std::abs(got.mean().item<double>()) < 0.1 * s_want);
    }
  }
  // c_proj: 0.02 / sqrt(2 * 2)
  CHECK(model.named_parameters()["transformer.h.1.mlp.c_proj.weight"].std().item<double>() == Approx(0.01).epsilon(0.05));
}

TEST_CASE("GPT-2 dropout is active in training mode only", "[models][gpt2]") {
  Gpt2Config c;
  c.vocab_size = 50, c.n_positions = 8, c.n_embd = 16, c.n_layer = 1, c.n_head = 2;
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0.3;
  Gpt2LMHeadModel model(c);
  hftrain::Batch batch = {{"input_ids", at::arange(16, at::kLong).view({2, 8})}};
  model.eval();
  at::Tensor a = model.forward(batch, std::nullopt).logits;
  CHECK(at::equal(a, model.forward(batch, std::nullopt).logits));
  model.train();
  CHECK_FALSE(at::allclose(a, model.forward(batch, std::nullopt).logits));
}

TEST_CASE("GPT-2 with gelu_pytorch_tanh gives gelu_new's logits, relu and exact gelu differ",
          "[models][gpt2]") {
  // gelu_new and gelu_pytorch_tanh are the same tanh approximation, computed differently.
  auto ref = hftrain::io::safetensors_load(golden(kCase + "expected.safetensors")).tensors.at("logits");
  hftrain::Batch batch = golden_batch();
  torch::NoGradGuard no_grad;
  CHECK(hftrain::test::max_abs_diff(load_model(kCase, "gelu_pytorch_tanh")->forward(batch, std::nullopt).logits, ref) < 1e-5);
  for (const char* act : {"gelu", "relu"}) {
    INFO(act);
    const double d = hftrain::test::max_abs_diff(load_model(kCase, act)->forward(batch, std::nullopt).logits, ref);
    CHECK(d > 1e-6);
    CHECK(d < 1.0);
  }
}

TEST_CASE("GPT-2 rejects sequences longer than n_positions", "[models][gpt2]") {
  Gpt2Config c;
  c.vocab_size = 10, c.n_positions = 4, c.n_embd = 8, c.n_layer = 1, c.n_head = 2;
  Gpt2LMHeadModel model(c);
  hftrain::test::require_error(
      Error::kUser, [&] { model.forward({{"input_ids", at::zeros({1, 5}, at::kLong)}}, std::nullopt); },
      {"sequence length 5", "n_positions 4"});
}

TEST_CASE("GPT2ForSequenceClassification matches transformers, pooling at the token before the first pad",
          "[models][gpt2]") {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden("models/gpt2-seqcls");
  auto model = hftrain::model_create(opts);
  REQUIRE(model->task() == hftrain::ModelTask::kSequenceClassification);
  CHECK_FALSE(model->accepts_loss_kwargs());
  hftrain::test::check_against_golden(*model, "models/gpt2-seqcls/");
  CHECK(model->hf_config() == read_json(golden("models/gpt2-seqcls/config.json")));
}
