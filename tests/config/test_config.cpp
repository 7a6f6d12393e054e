// Config loading: HF's defaults, precedence, and one clear line for bad input.
#include "hftrain/config/config.h"
#include "hftrain/core/error.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <fstream>

using hftrain::test::golden;
using hftrain::test::read_json;
using hftrain::test::TempDir;
using json = nlohmann::json;

namespace {

hftrain::Config resolve_yaml(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  hftrain::ConfigSource src;
  hftrain::config_merge_text(src, yaml, "run.yaml");
  for (const auto& s : sets) hftrain::config_merge_set(src, s);
  return hftrain::config_resolve(src);
}

std::string user_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    resolve_yaml(yaml, sets);
  } catch (const hftrain::Error& e) {
    REQUIRE(e.kind() == hftrain::Error::kUser);
    REQUIRE(std::string(e.what()).find('\n') == std::string::npos);  // one line
    return e.what();
  }
  FAIL("no error for:\n" << yaml);
  return "";
}

}  // namespace

TEST_CASE("command-line --set overrides the file, the file overrides defaults", "[unit][config]") {
  hftrain::Config c = resolve_yaml("learning_rate: 1e-3\nseed: 7\nmodel:\n  config:\n    n_layer: 2\n",
                                   {"learning_rate=3e-4", "model.config.n_layer=4"});
  CHECK(c.args.learning_rate == 3e-4);
  CHECK(c.args.seed == 7);
  CHECK(c.args.num_train_epochs == 3.0);
  CHECK(c.model.config["n_layer"] == 4);
}

TEST_CASE("an unknown key names the key, the nearest known one and the line", "[unit][config]") {
  std::string msg = user_error("output_dir: out\nlearning_rat: 0.1\n");
  CHECK_THAT(msg, Catch::Contains("unknown key \"learning_rat\""));
  CHECK_THAT(msg, Catch::Contains("did you mean \"learning_rate\""));
  CHECK_THAT(msg, Catch::Contains("run.yaml:2"));
  CHECK_THAT(user_error("data:\n  blok_size: 3\n"), Catch::Contains("did you mean \"data.block_size\""));
}

TEST_CASE("a wrong type and a negative learning rate are refused with the key and value", "[unit][config]") {
  CHECK_THAT(user_error("learning_rate: fast\n"), Catch::Contains("\"learning_rate\" must be a number, got \"fast\""));
  CHECK_THAT(user_error("max_steps: 2.5\n"), Catch::Contains("must be an integer"));
  CHECK_THAT(user_error("learning_rate: -1\n"), Catch::Contains("learning_rate must be >= 0, got -1 (from run.yaml:1)"));
  CHECK_THAT(user_error("lr_scheduler_type: cosin\n"), Catch::Contains("did you mean \"cosine\""));
}

TEST_CASE("eval_strategy steps without an eval dataset is refused as HF refuses it", "[unit][config]") {
  CHECK_THAT(user_error("eval_strategy: steps\ndata:\n  validation_split_percentage: 0\n"),
             Catch::Contains("no eval dataset"));
}

TEST_CASE("a missing data file is named", "[unit][config]") {
  CHECK_THAT(user_error("data:\n  train:\n    format: text\n    path: /nonexistent/train.txt\n"),
             Catch::Contains("data file not found: /nonexistent/train.txt"));
}

TEST_CASE("JSON configs load like YAML ones", "[unit][config]") {
  TempDir dir("config");
  std::ofstream(dir.str() + "/run.json") << R"({"learning_rate": 0.001, "warmup_ratio": 0.1, "data": {"block_size": 64}})";
  hftrain::ConfigSource src;
  hftrain::config_merge_file(src, dir.str() + "/run.json");
  hftrain::Config c = hftrain::config_resolve(src);
  CHECK(c.args.learning_rate == 0.001);
  CHECK(c.args.get_warmup_steps(37) == 4);  // ceil(37 * 0.1), as golden resolved.json says
  CHECK(c.data.block_size == 64);
}

TEST_CASE("YAML 1.2 scalars: 1e-3 is a number, quoted values stay strings", "[unit][config]") {
  CHECK(resolve_yaml("learning_rate: 1e-3\n").args.learning_rate == 1e-3);
  CHECK_THAT(user_error("learning_rate: \"1e-3\"\n"), Catch::Contains("must be a number"));
}

TEST_CASE("a pretrained directory's tokenizer is used when data.tokenizer is not given", "[unit][config]") {
  TempDir dir("pretrained-tok");
  std::ofstream(dir.str() + "/vocab.txt") << "[PAD]\n";
  hftrain::ConfigSource src;
  hftrain::config_merge_text(src, "model: {pretrained: " + dir.str() + "}\n", "run.yaml");
  CHECK(hftrain::config_resolve(src).data.tokenizer == dir.str());
  hftrain::config_merge_text(src, "data: {tokenizer: byte}\n", "run.yaml");
  CHECK(hftrain::config_resolve(src).data.tokenizer == "byte");  // an explicit choice wins
}

TEST_CASE("fused: true, false or a mapping of the fusions; anything else names the key", "[unit][config]") {
  CHECK(resolve_yaml("output_dir: out\n").fused == hftrain::Fusions{});  // all on by default
  const hftrain::Config off = resolve_yaml("fused: false\n");
  CHECK((!off.fused.lm_head_loss && !off.fused.attention && !off.fused.adamw && !off.fused.gelu && !off.fused.linear &&
         !off.fused.norm && !off.fused.swiglu));
  const hftrain::Config some = resolve_yaml("fused:\n  attention: false\n");
  CHECK((some.fused.lm_head_loss && !some.fused.attention && some.fused.adamw && some.fused.gelu && some.fused.linear &&
         some.fused.norm && some.fused.swiglu));
  CHECK(hftrain::config_to_json(some)["fused"] ==
        json{{"lm_head_loss", true}, {"attention", false}, {"adamw", true}, {"gelu", true}, {"linear", true},
             {"norm", true}, {"swiglu", true}});
  CHECK_THAT(user_error("fused:\n  atention: false\n"),
             Catch::Contains("unknown fusion \"atention\"") && Catch::Contains("did you mean \"attention\""));
  CHECK_THAT(user_error("fused:\n  attention: 1\n"), Catch::Contains("fused.attention must be true or false, got 1"));
  CHECK_THAT(user_error("fused: fast\n"), Catch::Contains("fused must be true, false or a mapping") &&
                                               Catch::Contains("run.yaml:1"));
}
