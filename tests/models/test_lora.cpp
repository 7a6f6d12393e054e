// LoRA against the real PEFT 0.14.0 (tests/golden/lora): Llama q/v, Llama's seven projections
// with use_rslora (tied embeddings), GPT-2's c_attn Conv1D with fan_in_fan_out. Each case loads
// the base model and PEFT's adapter as a user's run would, then matches the logits, loss and
// every LoRA gradient, the file PEFT's save_pretrained writes, three AdamW steps, and
// merge_and_unload's model.
#include "hftrain/builtins.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/safetensors.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/lora.h"
#include "hftrain/optim/adamw.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>

using hftrain::test::golden;
using hftrain::test::read_json;
using nlohmann::json;

namespace {

const char* const kLoraCases[] = {"lora/llama-lora-qv/", "lora/llama-lora-all-rslora/", "lora/gpt2-lora-c_attn/"};

// PEFT's parameter name -> hftrain's: no "base_model.model." and no adapter name.
std::string our_name(std::string peft) {
  peft.erase(0, std::string("base_model.model.").size());
  for (size_t p; (p = peft.find(".default")) != std::string::npos;) peft.erase(p, 8);
  return peft;
}

struct Adapted {
  std::shared_ptr<hftrain::Model> model;
  hftrain::LoraConfig config;
  hftrain::LoraSummary summary;
};

Adapted adapted(const std::string& dir) {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden(dir + "base");
  Adapted a;
  a.model = hftrain::model_create(opts);
  a.config = hftrain::lora_config_from_json(read_json(golden(dir + "adapter_init/adapter_config.json")), dir);
  a.summary = hftrain::lora_apply(*a.model, a.config, dir);
  hftrain::lora_load_weights(*a.model, a.config, golden(dir + "adapter_init"));
  return a;
}

}  // namespace

TEST_CASE("LoRA matches PEFT's logits, loss, gradients and trainable set", "[models][lora]") {
  for (const std::string dir : kLoraCases) {
    INFO(dir);
    Adapted a = adapted(dir);
    const json expected = read_json(golden(dir + "expected.json"));
    CHECK(a.config.scaling() == Approx(expected.at("scaling").get<double>()).epsilon(1e-12));
    CHECK(a.summary.trainable == expected.at("num_trainable_parameters").get<int64_t>());
    CHECK(a.summary.total == expected.at("num_all_parameters").get<int64_t>());

    a.model->train();
    auto tensors = hftrain::io::safetensors_load(golden(dir + "expected.safetensors")).tensors;
    hftrain::ModelOutput out = a.model->forward(hftrain::test::golden_batch(dir), std::nullopt);
    CHECK(hftrain::test::max_abs_diff(out.logits, tensors.at("logits")) < 1e-4);
    CHECK(std::abs(out.loss.item<double>() - expected.at("loss").get<double>()) < 1e-4);
    out.loss.backward();
    auto params = a.model->named_parameters();
    int64_t checked = 0;
    for (const auto& [key, ref] : tensors) {
      if (key.rfind("grad.", 0) != 0) continue;
      const std::string name = our_name(key.substr(5));
      INFO(name);
      REQUIRE(params.contains(name));
      REQUIRE(params[name].grad().defined());
      CHECK(hftrain::test::max_abs_diff(params[name].grad(), ref) <= 1e-4 * ref.to(at::kDouble).norm().item<double>());
      ++checked;
    }
    CHECK(checked == static_cast<int64_t>(expected.at("grad_l2_norms").size()));
    // The base is frozen: no gradient reaches it.
    for (const auto& p : params)
      if (p.key().find("lora_") == std::string::npos) CHECK_FALSE(p.value().grad().defined());
  }
}

TEST_CASE("the adapter directory is what PEFT's save_pretrained writes", "[models][lora]") {
  for (const std::string dir : kLoraCases) {
    INFO(dir);
    Adapted a = adapted(dir);
    hftrain::test::TempDir out("lora-save");
    hftrain::lora_save(*a.model, a.config, out.str());
    CHECK(read_json(out.str() + "/adapter_config.json") == read_json(golden(dir + "adapter_init/adapter_config.json")));
    auto mine = hftrain::io::safetensors_load(out.str() + "/adapter_model.safetensors").tensors;
    auto peft = hftrain::io::safetensors_load(golden(dir + "adapter_init/adapter_model.safetensors")).tensors;
    REQUIRE(mine.size() == peft.size());
    for (const auto& [k, v] : peft) {
      INFO(k);
      REQUIRE(mine.count(k));
      CHECK(mine.at(k).scalar_type() == v.scalar_type());
      CHECK(mine.at(k).equal(v));  // loaded, then written back unchanged
    }
  }
}

TEST_CASE("three AdamW steps on the adapter match PEFT's, and merging folds them into the weights", "[models][lora]") {
  for (const std::string dir : kLoraCases) {
    INFO(dir);
    Adapted a = adapted(dir);
    a.model->train();
    hftrain::ParamGroup group;
    group.lr = 1e-2;
    group.weight_decay = 0.0;
    for (const auto& p : a.model->parameters())
      if (p.requires_grad()) group.params.push_back(p);
    hftrain::AdamW opt({group}, hftrain::AdamWOptions{});
    const auto losses = read_json(golden(dir + "after_3_steps/losses.json")).at("losses");
    const hftrain::Batch batch = hftrain::test::golden_batch(dir);
    for (int step = 0; step < 3; ++step) {
      hftrain::ModelOutput out = a.model->forward(batch, std::nullopt);
      CHECK(std::abs(out.loss.item<double>() - losses[step].get<double>()) < 1e-4);
      out.loss.backward();
      opt.step();
      opt.zero_grad();
    }
    auto trained = hftrain::io::safetensors_load(golden(dir + "after_3_steps/adapter_model.safetensors")).tensors;
    auto mine = hftrain::lora_state_dict(*a.model, a.config);
    REQUIRE(mine.size() == trained.size());
    // Within 1e-5, but for the rare element whose gradient is near Adam's eps: the gradients
    // agree to float32 rounding (~1e-7 of their norm), and Adam's g / (|g| + eps) turns that
    // rounding into up to 2e-5 there (llama-lora-all-rslora, one element of 640 whose first
    // gradient is 1.4e-7).
    for (const auto& [k, v] : trained) {
      INFO(k);
      const at::Tensor diff = (mine.at(k).to(at::kDouble) - v.to(at::kDouble)).abs();
      CHECK(diff.max().item<double>() < 5e-5);
      CHECK(diff.gt(1e-5).sum().item<int64_t>() <= std::max<int64_t>(1, v.numel() / 500));
    }

    // merge_and_unload: PEFT's merged model, saved as an ordinary HF directory.
    hftrain::lora_load_weights(*a.model, a.config, golden(dir + "after_3_steps"));
    hftrain::lora_merge_and_unload(*a.model);
    hftrain::test::TempDir out("lora-merged");
    hftrain::model_save_pretrained(*a.model, out.str());
    auto merged = hftrain::io::safetensors_load(out.str() + "/model.safetensors").tensors;
    auto want = hftrain::io::safetensors_load(golden(dir + "merged/model.safetensors")).tensors;
    REQUIRE(merged.size() == want.size());
    for (const auto& [k, v] : want) {
      INFO(k);
      REQUIRE(merged.count(k));
      CHECK(hftrain::test::max_abs_diff(merged.at(k), v) < 1e-6);
    }
  }
}

TEST_CASE("peft settings that match nothing or are misspelled are refused with the model's names", "[models][lora]") {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden("lora/llama-lora-qv/base");
  auto model = hftrain::model_create(opts);
  auto config = hftrain::lora_config_from_json({{"r", 4}, {"target_modules", {"query"}}}, "run.yaml");
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::lora_apply(*model, config, "run.yaml"); },
                               {"run.yaml", "query", "q_proj", "down_proj"});
  hftrain::test::require_error(
      hftrain::Error::kUser, [&] { hftrain::lora_config_from_json({{"lora_alfa", 8}, {"target_modules", {"q_proj"}}}, "run.yaml"); },
      {"run.yaml", "peft.lora_alfa", "lora_alpha"});
  hftrain::test::require_error(
      hftrain::Error::kUser, [&] { hftrain::lora_config_from_json({{"r", 4}}, "run.yaml"); },
      {"run.yaml", "peft.target_modules"});
  // A regex must match a whole module name, as PEFT's re.fullmatch.
  auto regex = hftrain::lora_config_from_json({{"target_modules", ".*\\.(q|v)_proj"}}, "run.yaml");
  CHECK(hftrain::lora_apply(*model, regex, "run.yaml").targets.size() == 4);  // 2 layers x q, v
  auto gpt2_opts = hftrain::ModelOptions{};
  gpt2_opts.pretrained = golden("lora/gpt2-lora-c_attn/base");
  auto gpt2 = hftrain::model_create(gpt2_opts);
  auto no_fan = hftrain::lora_config_from_json({{"target_modules", {"c_attn"}}}, "run.yaml");
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::lora_apply(*gpt2, no_fan, "run.yaml"); },
                               {"run.yaml", "fan_in_fan_out", "c_attn"});
}

TEST_CASE("bias and modules_to_save train and are saved under PEFT's keys", "[models][lora]") {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden("lora/gpt2-lora-c_attn/base");
  auto model = hftrain::model_create(opts);
  // GPT-2 with bias "all": every bias trains and is saved; ln_f in full.
  auto c = hftrain::lora_config_from_json(
      {{"r", 2}, {"target_modules", {"c_attn"}}, {"fan_in_fan_out", true}, {"bias", "all"}, {"modules_to_save", {"ln_f"}}},
      "run.yaml");
  hftrain::lora_apply(*model, c, "run.yaml");
  auto params = model->named_parameters();
  CHECK(params["transformer.h.0.mlp.c_fc.bias"].requires_grad());
  CHECK_FALSE(params["transformer.h.0.mlp.c_fc.weight"].requires_grad());
  CHECK(params["transformer.ln_f.weight"].requires_grad());
  CHECK_FALSE(params["transformer.h.0.ln_1.weight"].requires_grad());
  auto keys = hftrain::lora_state_dict(*model, c);
  CHECK(keys.count("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"));
  CHECK(keys.count("base_model.model.transformer.h.1.mlp.c_proj.bias"));
  CHECK(keys.count("base_model.model.transformer.ln_f.weight"));
  CHECK(keys.count("base_model.model.transformer.ln_f.bias"));
  CHECK_FALSE(keys.count("base_model.model.transformer.h.0.ln_1.weight"));
  // lora_only: the adapted modules' biases alone.
  auto model2 = hftrain::model_create(opts);
  auto c2 = hftrain::lora_config_from_json(
      {{"r", 2}, {"target_modules", {"c_attn"}}, {"fan_in_fan_out", true}, {"bias", "lora_only"}}, "run.yaml");
  hftrain::lora_apply(*model2, c2, "run.yaml");
  auto keys2 = hftrain::lora_state_dict(*model2, c2);
  CHECK(keys2.count("base_model.model.transformer.h.0.attn.c_attn.bias"));
  CHECK_FALSE(keys2.count("base_model.model.transformer.h.0.mlp.c_fc.bias"));
  CHECK(keys2.size() == 2 * 3);  // 2 layers x (lora_A, lora_B, c_attn.bias)
}
