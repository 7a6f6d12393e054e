// Generation against transformers' model.generate (golden/generate.json): greedy ids equal on
// every case, with the KV cache and without it; the sampling warpers against their
// definitions.
#include "hftrain/builtins.h"
#include "hftrain/generate.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/model_family.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cmath>

using hftrain::test::golden;
using hftrain::test::read_json;
using json = nlohmann::json;

namespace {

std::shared_ptr<hftrain::Model> golden_model(const std::string& name) {
  hftrain::register_builtins();
  if (name == "trainer-final") {  // trainer/init's config with the run's final weights
    const json config = read_json(golden("trainer/init/config.json"));
    std::shared_ptr<hftrain::Model> m =
        hftrain::model_build(config.at("model_type").get<std::string>(), config, "trainer/init/config.json", false);
    hftrain::model_load_weights(*m, golden("trainer/final_model.safetensors"));
    return m;
  }
  hftrain::ModelOptions opts;
  opts.pretrained = golden("models/" + name);
  return hftrain::model_create(opts);
}

}  // namespace

TEST_CASE("greedy generation gives transformers' ids on every golden case, with and without the KV cache",
          "[unit][models][generate]") {
  const json cases = read_json(golden("generate.json")).at("cases");
  REQUIRE(cases.size() >= 8);
  for (const auto& [name, prompts] : cases.items()) {
    std::shared_ptr<hftrain::Model> model = golden_model(name);
    CHECK(model->supports_kv_cache());
    for (const json& c : prompts) {
      const auto prompt = c.at("prompt").get<std::vector<int64_t>>();
      const auto want = c.at("generated").get<std::vector<int64_t>>();
      for (bool cache : {true, false}) {
        INFO(name << " prompt " << c.at("prompt").dump() << (cache ? " with" : " without") << " the cache");
        hftrain::GenerateOptions o;
        o.max_new_tokens = static_cast<int64_t>(want.size());
        o.use_cache = cache;
        CHECK(hftrain::generate(*model, prompt, o) == want);
      }
    }
  }
}

TEST_CASE("generation stops after an EOS token and samples only from what the warpers keep", "[unit][generate]") {
  std::shared_ptr<hftrain::Model> model = golden_model("gpt2-clm");
  const json c = read_json(golden("generate.json")).at("cases").at("gpt2-clm").at(0);
  const auto prompt = c.at("prompt").get<std::vector<int64_t>>();
  const auto greedy = c.at("generated").get<std::vector<int64_t>>();
  hftrain::GenerateOptions o;
  o.max_new_tokens = 24;
  o.eos_token_ids = {greedy.at(2)};
  const std::vector<int64_t> stopped = hftrain::generate(*model, prompt, o);
  // The first occurrence of that id ends it, the EOS kept.
  const size_t first = std::find(greedy.begin(), greedy.end(), greedy.at(2)) - greedy.begin();
  CHECK(stopped == std::vector<int64_t>(greedy.begin(), greedy.begin() + static_cast<int64_t>(first) + 1));
  // top_k 1 samples the greedy ids; a fixed seed samples the same ids twice.
  o.eos_token_ids.clear();
  o.do_sample = true;
  o.top_k = 1;
  CHECK(hftrain::generate(*model, prompt, o) == greedy);
  o.top_k = 0;
  o.temperature = 0.7;
  o.seed = 5;
  CHECK(hftrain::generate(*model, prompt, o) == hftrain::generate(*model, prompt, o));
}

TEST_CASE("the warpers keep transformers' sets: temperature, then the top k, then the top p of the mass",
          "[unit][generate]") {
  const at::Tensor logits = at::log(at::tensor({0.05, 0.4, 0.1, 0.3, 0.15}, at::kFloat));
  hftrain::GenerateOptions o;
  o.top_k = 3;
  at::Tensor kept = hftrain::warp_logits(logits, o).isfinite();
  CHECK(kept.to(at::kInt).equal(at::tensor({0, 1, 0, 1, 1}, at::kInt)));
  o.top_k = 0;
  o.top_p = 0.65;  // sorted ascending the cumulative mass is .05 .15 .30 .60 1: remove those <= .35
  kept = hftrain::warp_logits(logits, o).isfinite();
  CHECK(kept.to(at::kInt).equal(at::tensor({0, 1, 0, 1, 0}, at::kInt)));
  o.top_p = 1.0;
  o.temperature = 2.0;
  CHECK(hftrain::warp_logits(logits, o).allclose(logits / 2));
}
