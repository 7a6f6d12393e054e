// hftrain: the Hugging Face Trainer workflow as a command-line tool.
//   hftrain train    [--config FILE] [--set key=value ...]
//   hftrain resume   --checkpoint DIR [--set key=value ...]
//   hftrain evaluate --config FILE | --checkpoint DIR
//   hftrain config   [--config FILE] [--set key=value ...]
// Exit codes: 0 done, 2 bad input (one line on stderr, nothing written), 1 runtime failure.
#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/run.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <cstdio>
#include <optional>

namespace {

struct Options {
  std::string config, checkpoint;
  std::vector<std::string> sets;
};

std::optional<std::string> opt(const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); }

int run(CLI::App& app, CLI::App* train, CLI::App* resume, CLI::App* evaluate, CLI::App* config, const Options& o) {
  using namespace hftrain;
  if (train->parsed()) {
    run_train(config_resolve(config_source(opt(o.config), o.sets)));
  } else if (resume->parsed()) {
    ConfigSource src = config_source_from_checkpoint(o.checkpoint, o.sets);
    config_merge_set(src, "resume_from_checkpoint=" + o.checkpoint);
    run_train(config_resolve(src));
  } else if (evaluate->parsed()) {
    HFT_CHECK(!o.config.empty() || !o.checkpoint.empty(), "hftrain evaluate needs --config FILE or --checkpoint DIR");
    ConfigSource src = o.checkpoint.empty() ? config_source(o.config, o.sets)
                                            : config_source_from_checkpoint(o.checkpoint, o.sets);
    run_evaluate(config_resolve(src), opt(o.checkpoint));
  } else if (config->parsed()) {
    std::printf("%s", json_to_yaml(config_to_json(config_resolve(config_source(opt(o.config), o.sets)))).c_str());
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
  resume->add_option("--set", o.sets, set_help);
  CLI::App* evaluate = app.add_subcommand("evaluate", "evaluate a checkpoint, or the model a config describes");
  evaluate->add_option("--config", o.config, "YAML or JSON config");
  evaluate->add_option("--checkpoint", o.checkpoint, "checkpoint directory");
  evaluate->add_option("--set", o.sets, set_help);
  CLI::App* config = app.add_subcommand("config", "print the resolved config and exit");
  config->add_option("--config", o.config, "YAML or JSON config");
  config->add_option("--set", o.sets, set_help);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  hftrain::compat::set_default_threads();
  try {
    return run(app, train, resume, evaluate, config, o);
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
