// Every task head through the binary: what it trains by default, that the evaluation inside
// training and `hftrain evaluate` on the checkpoint it wrote agree, and `hftrain predict`.
// safetensors.h brings glog's CHECK: included first, so that Catch's CHECK is the one defined.
#include "hftrain/io/safetensors.h"
#include "cli/cli_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

using namespace hftrain::test;
using json = nlohmann::json;

namespace {

// A WordPiece vocab of letters, their ## continuations and a few words (ids 0-4 special).
std::string write_vocab(const TempDir& dir) {
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
  vocab += "the\ncat\nsat\non\nmat\n.\n";
  std::ofstream(dir.str() + "/vocab.txt") << vocab;
  return dir.str() + "/vocab.txt";
}

const char* kBert =
    "{type: bert, config: {vocab_size: 64, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, "
    "intermediate_size: 64, max_position_embeddings: 32}}";

struct TaskCase {
  std::string name;
  std::string sets;          // --set options on top of write_config's run
  std::string architecture;  // what config.json must name
};

// The data and model of each task: a text corpus for the language models, labelled rows for
// the classifiers.
std::vector<TaskCase> task_cases(const TempDir& dir) {
  const std::string vocab = write_vocab(dir);
  std::string text, rows, tokens;
  for (int i = 0; i < 200; ++i) text += (i % 3 ? "the cat sat on the mat. " : "The mat sat on a cat.\n");
  std::ofstream(dir.str() + "/text.txt") << text;
  for (int i = 0; i < 64; ++i) {
    rows += json{{"sentence", std::string(1, "xyz"[i % 3]) + std::string(3 + i % 7, 'a' + i % 5)},
                 {"label", std::string(i % 3 ? "pos" : "neg")}}.dump() + "\n";
    std::vector<int> ids, labels;  // token classes: whether the id is even, -100 on [CLS]
    ids.push_back(2), labels.push_back(-100);
    for (int t = 0; t < 4 + i % 9; ++t) ids.push_back(5 + (i * 7 + t * 3) % 50), labels.push_back(ids.back() % 2);
    tokens += json{{"input_ids", ids}, {"labels", labels}}.dump() + "\n";
  }
  std::ofstream(dir.str() + "/rows.jsonl") << rows;
  std::ofstream(dir.str() + "/tokens.jsonl") << tokens;
  const std::string cache = " --set data.cache_dir=" + dir.str() + "/cache";
  const std::string on_text = cache + " --set 'data.train={format: text, path: " + dir.str() + "/text.txt}'";
  const std::string bert = " --set 'model=" + std::string(kBert) + "' --set data.tokenizer=" + vocab;
  return {
      {"causal_lm", on_text, "GPT2LMHeadModel"},
      // No task: BERT's first head, masked LM (the README's default), trained as one.
      {"masked_lm", on_text + bert, "BertForMaskedLM"},
      {"sequence_classification",
       cache + bert + " --set model.task=sequence_classification --set 'data.train={format: jsonl, path: " + dir.str() +
           "/rows.jsonl, text_field: sentence}' --set data.validation_split_percentage=25",
       "BertForSequenceClassification"},
      {"token_classification",
       cache + bert + " --set model.task=token_classification --set model.config.num_labels=2" +
           " --set 'data.train={format: jsonl, path: " + dir.str() + "/tokens.jsonl}'" +
           " --set data.validation_split_percentage=25",
       "BertForTokenClassification"},
  };
}

}  // namespace

TEST_CASE("every task's in-training evaluation equals hftrain evaluate on the checkpoint it wrote",
          "[integration][tasks]") {
  TempDir dir("tasks-eval");
  for (const TaskCase& t : task_cases(dir)) {
    DYNAMIC_SECTION(t.name) {
      const std::string out = dir.str() + "/" + t.name;
      Result r = run("train --config " + write_config(dir) + t.sets + " --set output_dir=" + out +
                     " --set max_steps=4 --set eval_steps=4 --set save_steps=4 --set 'metrics=[accuracy]' 2>&1");
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      CHECK(read_json(out + "/config.json").at("architectures") == json::array({t.architecture}));
      json in_training;
      for (const json& row : read_log(out + "/log.jsonl"))
        if (row.contains("eval_loss")) in_training = row;
      REQUIRE(in_training.value("step", 0) == 4);
      Result e = run("evaluate --checkpoint " + out + "/checkpoint-4 2>&1");
      INFO(e.output);
      REQUIRE(e.exit_code == 0);
      const json evaluated = read_json(out + "/checkpoint-4/eval_results.json");
      for (const char* key : {"eval_loss", "eval_accuracy"}) {
        INFO(key);
        REQUIRE(evaluated.contains(key));
        const double a = in_training.at(key).get<double>(), b = evaluated.at(key).get<double>();
        CHECK(std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(a)));
      }
    }
  }
}
