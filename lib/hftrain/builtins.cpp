#include "hftrain/builtins.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/tokenizer.h"
#include "hftrain/models/bert.h"
#include "hftrain/models/gemma2.h"
#include "hftrain/models/gpt2.h"
#include "hftrain/models/llama.h"
#include "hftrain/models/model_family.h"
#include "hftrain/train/callbacks/early_stopping.h"
#include "hftrain/train/callbacks/plot.h"
#include "hftrain/train/callbacks/progress.h"
#include "hftrain/train/callbacks/tensorboard.h"

#include <unistd.h>

#include <mutex>

namespace hftrain {

namespace {

void no_options(const char* name, const nlohmann::json& options, const std::string& where) {
  HFT_CHECK(options.is_null() || options.empty(), "callback {} takes no options, got {} (from {})", name,
            clip(options.dump()), where);
}

}  // namespace

void register_builtins() {
  static std::once_flag once;
  std::call_once(once, [] {
    model_family_add(gpt2_family());
    model_family_add(llama_family());
    model_family_add(qwen2_family());
    model_family_add(mistral_family());
    model_family_add(phi3_family());
    model_family_add(gemma2_family());
    model_family_add(bert_family());
    tokenizer_registry().add("byte", [] { return std::make_unique<ByteTokenizer>(); });
    callback_registry().add("early_stopping", &EarlyStoppingCallback::create);
    // The defaults every Trainer adds on rank 0 (default_callbacks), and report_to's.
    callback_registry().add("log", [](const nlohmann::json& o, const std::string& where) -> std::unique_ptr<Callback> {
      no_options("log", o, where);
      return std::make_unique<LogCallback>();
    });
    callback_registry().add("progress", [](const nlohmann::json& o, const std::string& where) -> std::unique_ptr<Callback> {
      no_options("progress", o, where);
      return std::make_unique<ProgressCallback>(::isatty(STDOUT_FILENO));
    });
    callback_registry().add("plot", [](const nlohmann::json& o, const std::string& where) -> std::unique_ptr<Callback> {
      no_options("plot", o, where);
      return std::make_unique<PlotCallback>();
    });
    callback_registry().add("tensorboard", [](const nlohmann::json& o, const std::string& where) -> std::unique_ptr<Callback> {
      no_options("tensorboard", o, where);
      return std::make_unique<TensorBoardCallback>();
    });
  });
}

}  // namespace hftrain
