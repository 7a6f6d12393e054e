// `hftrain generate`: a checkpoint's causal LM continues prompts.
#include "hftrain/builtins.h"
#include "hftrain/core/error.h"
#include "hftrain/data/examples.h"
#include "hftrain/data/tokenizer.h"
#include "hftrain/generate.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/models/lora.h"
#include "hftrain/predict_input.h"
#include "hftrain/run.h"

#include <ATen/Functions.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace hftrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The model's eos_token_id (a number or a list), which transformers' generation config takes.
std::vector<int64_t> eos_ids(const json& hf) {
  std::vector<int64_t> out;
  const json e = hf.value("eos_token_id", json(nullptr));
  if (e.is_number_integer()) out.push_back(e.get<int64_t>());
  if (e.is_array())
    for (const json& v : e)
      if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  return out;
}

// --input: a text file's lines, or the text field of .jsonl / .csv / .tsv rows.
std::vector<std::string> read_prompts(const Config& config, const std::string& input) {
  const DatasetOptions d = input_dataset_options(input, config, /*by_line=*/true);
  std::vector<std::string> out;
  for (const Example& e : examples_read(d, "--input")) {
    HFT_CHECK(!e.tokenized, "{}: generation reads text prompts; a row has input_ids", input);
    if (e.text.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(e.text);
  }
  return out;
}

}  // namespace

void run_generate(const Config& config, const std::string& checkpoint, const GenerateRequest& r) {
  register_builtins();
  std::vector<std::string> prompts = r.prompts;
  if (!r.input.empty()) {
    std::error_code ec;
    HFT_CHECK(fs::is_regular_file(r.input, ec), "generate input not found: {}", r.input);
    for (std::string& p : read_prompts(config, r.input)) prompts.push_back(std::move(p));
  }
  HFT_CHECK(!prompts.empty(), "hftrain generate needs --prompt TEXT or --input FILE");
  const std::shared_ptr<const Tokenizer> tok = tokenizer_load(config.data.tokenizer);
  ModelOptions mo = config.model;
  if (!config.peft) mo.pretrained = checkpoint;  // a LoRA checkpoint holds the adapter alone
  std::shared_ptr<Model> model = model_create(mo);
  if (config.peft) lora_prepare(*model, *config.peft, checkpoint);
  HFT_CHECK(model->task() == ModelTask::kCausalLM, "hftrain generate needs a causal LM; {} is a {} model", checkpoint,
            model->hf_config().value("architectures", json::array({""}))[0].get<std::string>());
  GenerateOptions o = r.options;
  if (!r.ignore_eos) o.eos_token_ids = eos_ids(model->hf_config());
  std::string lines;
  int64_t tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int64_t> prompt = tok->encode(prompts[i]);
    const std::vector<int64_t> ids = generate(*model, prompt, o);
    tokens += static_cast<int64_t>(ids.size());
    const std::string text = tok->decode(ids);
    if (r.output.empty()) std::printf("%s%s\n", prompts[i].c_str(), text.c_str());
    lines += json{{"index", i}, {"prompt", prompts[i]}, {"generated_ids", ids}, {"generated_text", text}}
                 .dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.output.empty()) {
    if (!fs::path(r.output).parent_path().empty()) fs::create_directories(fs::path(r.output).parent_path());
    io::write_file_atomic(r.output, lines);
    std::printf("wrote %s (%zu prompts)\n", r.output.c_str(), prompts.size());
  }
  std::fprintf(stderr, "hftrain: generated %lld tokens in %.2f s (%.1f tokens/s%s)\n", static_cast<long long>(tokens),
               seconds, static_cast<double>(tokens) / std::max(seconds, 1e-9),
               o.use_cache && model->supports_kv_cache() ? ", KV cache" : ", no cache");
}

}  // namespace hftrain
