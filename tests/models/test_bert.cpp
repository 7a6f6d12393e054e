// BERT heads against transformers 4.48.3: golden/models/bert-mlm, bert-seqcls, bert-tokcls.
#include "hftrain/builtins.h"
#include "hftrain/models/bert.h"
#include "hftrain/models/hf_model_dir.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>

using hftrain::test::golden;
using hftrain::test::read_json;
using nlohmann::json;

namespace {

std::shared_ptr<hftrain::Model> load(const std::string& name) {
  hftrain::register_builtins();
  hftrain::ModelOptions opts;
  opts.pretrained = golden("models/" + name);
  return hftrain::model_create(opts);
}

}  // namespace

TEST_CASE("BERT masked LM, sequence and token classification match transformers' logits, loss and gradients",
          "[models][bert]") {
  const std::vector<std::pair<std::string, hftrain::ModelTask>> cases = {
      {"bert-mlm", hftrain::ModelTask::kMaskedLM},
      {"bert-seqcls", hftrain::ModelTask::kSequenceClassification},
      {"bert-tokcls", hftrain::ModelTask::kTokenClassification}};
  for (const auto& [name, task] : cases) {
    INFO(name);
    auto model = load(name);
    CHECK(model->task() == task);
    CHECK_FALSE(model->accepts_loss_kwargs());
    hftrain::test::check_against_golden(*model, "models/" + name + "/");
  }
}

TEST_CASE("BERT parameters, tied aliases and config.json are what save_pretrained writes", "[models][bert]") {
  for (const std::string name : {"bert-mlm", "bert-seqcls", "bert-tokcls"}) {
    INFO(name);
    auto model = load(name);
    json expected = read_json(golden("models/" + name + "/expected.json"));
    auto want = expected.at("model_safetensors_keys").get<std::vector<std::string>>();
    std::vector<std::string> got;
    int64_t count = 0;
    for (const auto& p : model->named_parameters()) got.push_back(p.key()), count += p.value().numel();
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    CHECK(got == want);
    CHECK(count == expected.at("num_parameters").get<int64_t>());
    std::vector<std::string> aliases;
    for (const auto& [k, _] : expected.at("tied_state_dict_aliases").items()) aliases.push_back(k);
    auto have = model->tied_aliases();
    std::sort(have.begin(), have.end());
    CHECK(have == aliases);
    CHECK(model->hf_config() == read_json(golden("models/" + name + "/config.json")));
    CHECK(model->is_no_decay("bert.encoder.layer.0.attention.output.LayerNorm.weight"));
    CHECK(model->is_no_decay("bert.encoder.layer.1.intermediate.dense.bias"));
    CHECK_FALSE(model->is_no_decay("bert.encoder.layer.1.intermediate.dense.weight"));
  }
}

TEST_CASE("a BERT architecture hftrain lacks is named with the ones it has", "[models][bert]") {
  hftrain::register_builtins();
  json cfg = read_json(golden("models/bert-mlm/config.json"));
  cfg["architectures"] = json::array({"BertForQuestionAnswering"});
  hftrain::test::require_error(hftrain::Error::kUser,
                               [&] { hftrain::model_build("bert", cfg, "config.json", false); },
                               {"config.json", "BertForQuestionAnswering", "BertForMaskedLM"});
}
