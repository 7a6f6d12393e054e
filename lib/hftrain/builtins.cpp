#include "hftrain/builtins.h"

#include "hftrain/data/tokenizer.h"
#include "hftrain/models/bert.h"
#include "hftrain/models/gpt2.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/layers.h"
#include "hftrain/core/strings.h"
#include "hftrain/models/llama.h"
#include "hftrain/train/callbacks/early_stopping.h"

#include <mutex>

namespace hftrain {

void register_builtins() {
  static std::once_flag once;
  std::call_once(once, [] {
    model_registry().add("gpt2", [](const nlohmann::json& c, const std::string& where, bool strict) -> std::unique_ptr<Model> {
      const std::string arch = model_architecture(c, "GPT2LMHeadModel", {"GPT2LMHeadModel", "GPT2ForSequenceClassification"}, where);
      if (arch == "GPT2ForSequenceClassification")
        return std::make_unique<Gpt2ForSequenceClassification>(gpt2_config_from_json(c, where, strict));
      return std::make_unique<Gpt2LMHeadModel>(gpt2_config_from_json(c, where, strict));
    });
    model_registry().add("llama", [](const nlohmann::json& c, const std::string& where, bool strict) {
      model_architecture(c, "LlamaForCausalLM", {"LlamaForCausalLM"}, where);
      return std::make_unique<LlamaForCausalLM>(llama_config_from_json(c, where, strict));
    });
    model_registry().add("bert", [](const nlohmann::json& c, const std::string& where, bool strict) -> std::unique_ptr<Model> {
      const std::string arch = model_architecture(
          c, "BertForMaskedLM", {"BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification"}, where);
      BertConfig config = bert_config_from_json(c, where, strict);
      if (arch == "BertForMaskedLM") return std::make_unique<BertForMaskedLM>(config);
      return std::make_unique<BertForClassification>(config, arch == "BertForTokenClassification");
    });
    tokenizer_registry().add("byte", [] { return std::make_unique<ByteTokenizer>(); });
    callback_registry().add("early_stopping", &EarlyStoppingCallback::create);
  });
}

}  // namespace hftrain
