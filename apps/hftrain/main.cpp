// hftrain: the Hugging Face Trainer workflow as a command-line tool.
//   hftrain train    [--config FILE] [--set key=value ...]
//   hftrain resume   --checkpoint DIR [--set key=value ...]
//   hftrain evaluate --config FILE | --checkpoint DIR
//   hftrain predict  --checkpoint DIR --input FILE [--output FILE]
//   hftrain generate --checkpoint DIR --prompt TEXT | --input FILE [--max_new_tokens N] [--do_sample] ...
//   hftrain config   [--config FILE] [--set key=value ...]
//   hftrain tokenize --tokenizer PATH --input PATH --output FILE
//   hftrain env
// Exit codes: 0 done, 2 bad input (one line on stderr, nothing written), 1 runtime failure.
#include "hftrain/core/error.h"
#include "hftrain/core/log.h"
#include "hftrain/core/memory_limit.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/run.h"
#include "hftrain/tokenize_command.h"
#include "hftrain/train/preemption.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <cstdio>
#include <optional>

namespace {

struct Options {
  std::string config, checkpoint, input, output, logits;
  std::vector<std::string> sets;
  hftrain::TokenizeOptions tokenize;
  hftrain::GenerateRequest generate;
};

// HfArgumentParser style: `--learning_rate 3e-4`, `--learning_rate=3e-4`, and a bare
// `--do_train` for true; each becomes a --set, after the explicit --set overrides.
void add_hf_style(const std::vector<std::string>& extras, std::vector<std::string>& sets) {
  for (size_t i = 0; i < extras.size(); ++i) {
    const std::string& tok = extras[i];
    HFT_CHECK(tok.rfind("--", 0) == 0 && tok.size() > 2, "unexpected argument \"{}\"; options look like --key value",
              tok);
    std::string name = tok.substr(2);
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      sets.push_back(name);
    } else if (i + 1 < extras.size() && extras[i + 1].rfind("--", 0) != 0) {
      sets.push_back(name + "=" + extras[++i]);
    } else {
      sets.push_back(name + "=true");
    }
  }
}

std::optional<std::string> opt(const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); }

int run(CLI::App& app, CLI::App* train, CLI::App* resume, CLI::App* evaluate, CLI::App* predict, CLI::App* config,
        CLI::App* tokenize, CLI::App* generate, CLI::App* env, Options o) {
  using namespace hftrain;
  for (CLI::App* sub : {train, resume, evaluate, predict, config})
    if (sub->parsed()) add_hf_style(sub->remaining(), o.sets);
  if (train->parsed()) {
    run_train(config_resolve(config_source(opt(o.config), o.sets)));
  } else if (resume->parsed()) {
    run_train(config_resolve(config_source_for_resume(o.checkpoint, opt(o.config), o.sets)));
  } else if (evaluate->parsed()) {
    HFT_CHECK(!o.config.empty() || !o.checkpoint.empty(), "hftrain evaluate needs --config FILE or --checkpoint DIR");
    ConfigSource src = o.checkpoint.empty() ? config_source(o.config, o.sets)
                                            : config_source_from_checkpoint(o.checkpoint, o.sets);
    run_evaluate(config_resolve(src), opt(o.checkpoint));
  } else if (predict->parsed()) {
    const std::string out = o.output.empty() ? o.checkpoint + "/predictions.jsonl" : o.output;
    run_predict(config_resolve(config_source_from_checkpoint(o.checkpoint, o.sets)), o.checkpoint, o.input, out,
                o.logits);
  } else if (config->parsed()) {
    ConfigSource src = config_source(opt(o.config), o.sets);
    Config resolved = config_resolve(src);
    std::printf("%s", config_describe(resolved, &src).c_str());
  } else if (generate->parsed()) {
    run_generate(config_resolve(config_source_from_checkpoint(o.checkpoint, o.sets)), o.checkpoint, o.generate);
  } else if (env->parsed()) {
    std::printf("%s", compat::describe_host().c_str());
  } else if (tokenize->parsed()) {
    run_tokenize(o.tokenize);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hftrain: train transformer models the way the Hugging Face Trainer does, without Python"};
  app.set_version_flag("--version", std::string("hftrain ") + HFTRAIN_VERSION);
  app.require_subcommand(1);
  Options o;
  const char* set_help = "override a config key, e.g. --set learning_rate=3e-4 --set model.config.n_layer=4";
  CLI::App* train = app.add_subcommand("train", "train from a config (the built-in default when none is given)");
  train->add_option("--config", o.config, "YAML or JSON config of TrainingArguments, model: and data:");
  train->add_option("--set", o.sets, set_help);
  CLI::App* resume = app.add_subcommand("resume", "continue a run from a checkpoint-N directory");
  resume->add_option("--checkpoint", o.checkpoint, "checkpoint directory")->required();
  resume->add_option("--config", o.config, "the run's config, for a checkpoint hftrain did not write");
  resume->add_option("--set", o.sets, set_help);
  CLI::App* evaluate = app.add_subcommand("evaluate", "evaluate a checkpoint, or the model a config describes");
  evaluate->add_option("--config", o.config, "YAML or JSON config");
  evaluate->add_option("--checkpoint", o.checkpoint, "checkpoint directory");
  evaluate->add_option("--set", o.sets, set_help);
  CLI::App* predict = app.add_subcommand("predict", "predict with a checkpoint's model: every task head, text, JSON Lines, CSV or TSV input");
  predict->add_option("--checkpoint", o.checkpoint, "checkpoint directory")->required();
  predict->add_option("--input", o.input, "text (a line per example; one document for a causal LM), .jsonl, .csv or .tsv")
      ->required();
  predict->add_option("--output", o.output, "predictions JSONL (default: CHECKPOINT/predictions.jsonl)");
  predict->add_option("--logits", o.logits, "also write the logits, float32, to this safetensors file (key \"logits\")");
  predict->add_option("--set", o.sets, set_help);
  CLI::App* generate = app.add_subcommand("generate", "continue prompts with a checkpoint's causal LM (KV cache)");
  hftrain::GenerateRequest& g = o.generate;
  generate->add_option("--checkpoint", o.checkpoint, "checkpoint or final model directory")->required();
  generate->add_option("--prompt", g.prompts, "a prompt (repeatable)");
  generate->add_option("--input", g.input, "prompts: a text file's lines, or .jsonl/.csv/.tsv rows' text field");
  generate->add_option("--output", g.output, "write JSONL (prompt, generated_ids, generated_text) instead of printing");
  generate->add_option("--max_new_tokens", g.options.max_new_tokens, "tokens to generate at most (default 20)");
  generate->add_flag("--do_sample", g.options.do_sample, "sample instead of greedy decoding");
  generate->add_option("--temperature", g.options.temperature, "sampling temperature (default 1.0)");
  generate->add_option("--top_k", g.options.top_k, "sample among the k most likely tokens; 0: all (default 50)");
  generate->add_option("--top_p", g.options.top_p, "sample within this share of the probability mass (default 1.0)");
  generate->add_option("--seed", g.options.seed, "the sampling generator's seed (default 42)");
  generate->add_flag("!--no_cache", g.options.use_cache, "recompute the whole sequence each step (no KV cache)");
  generate->add_flag("--ignore_eos", g.ignore_eos, "do not stop at the model's eos_token_id");
  generate->add_option("--set", o.sets, set_help);
  CLI::App* config = app.add_subcommand("config", "print the resolved config and exit");
  config->add_option("--config", o.config, "YAML or JSON config");
  config->add_option("--set", o.sets, set_help);

  CLI::App* tokenize = app.add_subcommand("tokenize", "tokenize a corpus into JSON Lines of input_ids or a token file");
  hftrain::TokenizeOptions& t = o.tokenize;
  tokenize->add_option("--tokenizer", t.tokenizer, "tokenizer.json, a directory with one (or vocab.json + merges.txt, "
                       "or vocab.txt), or \"byte\"")->required();
  tokenize->add_option("--input", t.input, "a file, a directory or a glob")->required();
  tokenize->add_option("--output", t.output, "FILE.jsonl (input_ids per example) or a token file")->required();
  tokenize->add_option("--format", t.input_format, "input format: text, jsonl, csv, tsv (default: by extension)");
  tokenize->add_option("--sample-by", t.sample_by, "text input: line, paragraph or document (default line)");
  tokenize->add_option("--text-field", t.text_field, "jsonl/csv/tsv: the text field (default text)");
  tokenize->add_option("--output-format", t.output_format, "jsonl, uint16 or uint32 (default: by extension and vocab)");
  tokenize->add_flag("!--no-special-tokens", t.add_special_tokens, "leave out the post-processor's special tokens");
  tokenize->add_option("--workers", t.workers, "tokenizer threads (default: one per core)");
  tokenize->add_flag("--regex-only", t.regex_only,
                     "run GPT-2's and Llama 3's split regexes through Oniguruma, not hftrain's scanners (to check them)");

  CLI::App* env = app.add_subcommand("env", "print the versions, the CPU, the BLAS kernels and the threads in use");

  for (CLI::App* sub : {train, resume, evaluate, predict, config}) sub->allow_extras();  // HF-style --key value
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  hftrain::compat::configure_host();
  hftrain::preemption_install();
  try {
    hftrain::install_cpu_memory_limit_from_env();
    return run(app, train, resume, evaluate, predict, config, tokenize, generate, env, o);
  } catch (const hftrain::Interrupted& e) {
    if (!hftrain::process_is_replica()) std::fprintf(stderr, "hftrain: %s\n", e.what());  // once per run
    return e.exit_code();
  } catch (const hftrain::Error& e) {
    std::fprintf(stderr, "hftrain: error: %s\n", e.what());
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "hftrain: runtime error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hftrain: runtime error: %s\n", e.what());
    return 1;
  }
}
