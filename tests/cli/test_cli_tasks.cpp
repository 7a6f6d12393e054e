// Every task head through the binary: what it trains by default, that the evaluation inside
// training and `hftrain evaluate` on the checkpoint it wrote agree, and `hftrain predict`.
// safetensors.h brings glog's CHECK: included first, so that Catch's CHECK is the one defined.
#include "hftrain/io/safetensors.h"
#include "cli/cli_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

using namespace hftrain::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

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
  std::string eval;          // the eval file
};

// The data and model of each task: a text corpus for the language models, labelled rows for
// the classifiers; each with an eval file of its own kind (`eval`), which predict reads too.
std::vector<TaskCase> task_cases(const TempDir& dir) {
  const std::string vocab = write_vocab(dir);
  std::string text, rows, tokens;
  for (int i = 0; i < 300; ++i) text += (i % 3 ? "the cat sat on the mat. " : "The mat sat on a cat.\n");
  std::ofstream(dir.str() + "/text.txt") << text;
  std::ofstream(dir.str() + "/text-eval.txt") << text.substr(0, 800);
  for (int i = 0; i < 80; ++i) {
    rows += json{{"sentence", std::string(1, "xyz"[i % 3]) + std::string(3 + i % 7, 'a' + i % 5)},
                 {"label", std::string(i % 3 ? "pos" : "neg")}}.dump() + "\n";
    std::vector<int> ids, labels;  // token classes: whether the id is even, -100 on [CLS]
    ids.push_back(2), labels.push_back(-100);
    for (int t = 0; t < 4 + i % 9; ++t) ids.push_back(5 + (i * 7 + t * 3) % 50), labels.push_back(ids.back() % 2);
    tokens += json{{"input_ids", ids}, {"labels", labels}}.dump() + "\n";
    if (i == 63) {  // the first 64 rows train, the rest evaluate
      std::ofstream(dir.str() + "/rows.jsonl") << rows;
      std::ofstream(dir.str() + "/tokens.jsonl") << tokens;
      rows.clear(), tokens.clear();
    }
  }
  std::ofstream(dir.str() + "/rows-eval.jsonl") << rows;
  std::ofstream(dir.str() + "/tokens-eval.jsonl") << tokens;
  auto data = [&](const std::string& train, const std::string& eval, const std::string& more) {
    return " --set data.cache_dir=" + dir.str() + "/cache --set 'data.train={format: " + more + ", path: " + dir.str() +
           "/" + train + "}' --set 'data.eval={format: " + more + ", path: " + dir.str() + "/" + eval + "}'";
  };
  const std::string bert = " --set 'model=" + std::string(kBert) + "' --set data.tokenizer=" + vocab;
  return {
      {"causal_lm", data("text.txt", "text-eval.txt", "text"), "GPT2LMHeadModel", dir.str() + "/text-eval.txt"},
      // No task: BERT's first head, masked LM (the README's default), trained as one.
      {"masked_lm", data("text.txt", "text-eval.txt", "text") + bert + " --set data.group_texts=false",
       "BertForMaskedLM", dir.str() + "/text-eval.txt"},
      {"sequence_classification",
       data("rows.jsonl", "rows-eval.jsonl", "jsonl, text_field: sentence") + bert +
           " --set model.task=sequence_classification",
       "BertForSequenceClassification", dir.str() + "/rows-eval.jsonl"},
      {"token_classification",
       data("tokens.jsonl", "tokens-eval.jsonl", "jsonl") + bert +
           " --set model.task=token_classification --set model.config.num_labels=2",
       "BertForTokenClassification", dir.str() + "/tokens-eval.jsonl"},
  };
}

// A run of task `t` into dir/<task>: 8 steps, evaluated and saved at 4 and 8.
Result train_task(const TempDir& dir, const TaskCase& t) {
  return run("train --config " + write_config(dir) + t.sets + " --set output_dir=" + dir.str() + "/" + t.name +
             " --set max_steps=8 --set eval_steps=4 --set save_steps=4 --set 'metrics=[accuracy]' 2>&1");
}

json last_eval(const std::string& out) {
  json e;
  for (const json& row : read_log(out + "/log.jsonl"))
    if (row.contains("eval_loss")) e = row;
  return e;
}

}  // namespace

TEST_CASE("every task: the in-training evaluation, hftrain evaluate on its checkpoint and predict on the eval file agree",
          "[integration][tasks]") {
  TempDir dir("tasks-eval");
  for (const TaskCase& t : task_cases(dir)) {
    DYNAMIC_SECTION(t.name) {
      const std::string out = dir.str() + "/" + t.name;
      Result r = train_task(dir, t);
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      CHECK(read_json(out + "/config.json").at("architectures") == json::array({t.architecture}));
      const json in_training = last_eval(out);
      REQUIRE(in_training.value("step", 0) == 8);
      Result e = run("evaluate --checkpoint " + out + "/checkpoint-8 2>&1");
      INFO(e.output);
      REQUIRE(e.exit_code == 0);
      const json evaluated = read_json(out + "/checkpoint-8/eval_results.json");
      for (const char* key : {"eval_loss", "eval_accuracy"}) {
        INFO(key);
        REQUIRE(evaluated.contains(key));
        const double a = in_training.at(key).get<double>(), b = evaluated.at(key).get<double>();
        CHECK(std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(a)));
      }
      // hftrain predict on the eval file: the same rows, batches and (masked LM) masks.
      Result p = run("predict --checkpoint " + out + " --input " + t.eval + " --output " + out + "/pred/rows.jsonl" +
                     " --logits " + out + "/pred/logits.safetensors 2>&1");
      INFO(p.output);
      REQUIRE(p.exit_code == 0);
      const json ev = last_eval(out), test = read_json(out + "/pred/test_results.json");
      CHECK(std::abs(test.at("test_loss").get<double>() - ev.at("eval_loss").get<double>()) <= 1e-6);
      CHECK(std::abs(test.at("test_accuracy").get<double>() - ev.at("eval_accuracy").get<double>()) <= 1e-9);
      const std::vector<json> rows = read_log(out + "/pred/rows.jsonl");
      const at::Tensor logits = hftrain::io::safetensors_load(out + "/pred/logits.safetensors").tensors.at("logits");
      REQUIRE(logits.size(0) == static_cast<int64_t>(rows.size()));
      for (size_t i = 0; i < rows.size(); ++i) {
        const json& row = rows[i];
        INFO(row.dump());
        const at::Tensor best = logits[static_cast<int64_t>(i)].argmax(-1);
        if (t.name == "sequence_classification") {
          CHECK(row.at("predicted_id") == best.item<int64_t>());
          CHECK(row.at("label") == ((64 + i) % 3 ? "pos" : "neg"));  // eval rows start at 64
          continue;
        }
        const std::vector<int64_t> pred = row.at("predicted_ids").get<std::vector<int64_t>>();
        if (t.name == "causal_lm") {
          CHECK(pred.size() == 31);
          for (size_t k = 0; k < pred.size(); ++k) CHECK(pred[k] == best[static_cast<int64_t>(k)].item<int64_t>());
        } else if (t.name == "token_classification") {
          const auto ids = row.at("input_ids").get<std::vector<int64_t>>();
          REQUIRE(pred.size() == ids.size());
          CHECK(ids.size() == 5 + (64 + i) % 9);
          for (size_t k = 0; k < pred.size(); ++k) {
            CHECK(pred[k] == best[static_cast<int64_t>(k)].item<int64_t>());
            CHECK(row.at("predicted_labels")[k] == "LABEL_" + std::to_string(pred[k]));
          }
          // Past its batch's longest row (eval batches of 8) the logits are -100, as HF pads
          // batches of logits to one length.
          size_t longest = 0;
          for (size_t j = i / 8 * 8; j < std::min(rows.size(), i / 8 * 8 + 8); ++j)
            longest = std::max(longest, rows[j].at("input_ids").size());
          if (static_cast<int64_t>(longest) < logits.size(1))
            CHECK(logits[static_cast<int64_t>(i)][static_cast<int64_t>(longest)].eq(-100).all().item<bool>());
        } else {  // masked LM: a prediction per masked position, the row filled with them
          const auto pos = row.at("masked_positions").get<std::vector<int64_t>>();
          REQUIRE(pred.size() == pos.size());
          CHECK(row.at("labels").size() == pos.size());
          auto filled = row.at("input_ids").get<std::vector<int64_t>>();
          for (size_t k = 0; k < pos.size(); ++k) {
            CHECK(pred[k] == best[pos[k]].item<int64_t>());
            filled[pos[k]] = pred[k];
          }
          CHECK(row.at("filled_ids") == filled);
        }
      }
    }
  }
}

TEST_CASE("hftrain predict fills [MASK], classes unlabelled tokens, and reads a causal input shorter than a block",
          "[integration][tasks]") {
  TempDir dir("tasks-predict-plain");
  const std::vector<TaskCase> cases = task_cases(dir);
  auto find = [&](const std::string& name) {
    return *std::find_if(cases.begin(), cases.end(), [&](const TaskCase& t) { return t.name == name; });
  };
  SECTION("masked LM: the input's own [MASK] tokens are filled; nothing to score") {
    const TaskCase t = find("masked_lm");
    Result r = run("train --config " + write_config(dir) + t.sets + " --set output_dir=" + dir.str() +
                   "/mlm --set max_steps=200 --set save_strategy=no --set eval_strategy=no --set learning_rate=3e-3");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    std::ofstream(dir.str() + "/masked.txt") << "the cat sat on the [MASK].\nthe [MASK] sat on the mat.\n\n";
    Result p = run("predict --checkpoint " + dir.str() + "/mlm --input " + dir.str() + "/masked.txt --output " +
                   dir.str() + "/mlm-pred/rows.jsonl 2>&1");
    INFO(p.output);
    REQUIRE(p.exit_code == 0);
    const std::vector<json> rows = read_log(dir.str() + "/mlm-pred/rows.jsonl");
    REQUIRE(rows.size() == 2);  // the empty line is no example
    // The corpus says what goes there.
    CHECK(rows[0].at("masked_positions") == json::array({6}));
    CHECK(rows[1].at("masked_positions") == json::array({2}));
    for (const json& row : rows) CHECK(row.at("filled_text") == "[CLS] the cat sat on the mat. [SEP]");
    CHECK_FALSE(rows[0].contains("labels"));
    CHECK_FALSE(read_json(dir.str() + "/mlm-pred/test_results.json").contains("test_loss"));
  }
  SECTION("token classification: rows without labels get predictions and no metrics") {
    const TaskCase t = find("token_classification");
    REQUIRE(train_task(dir, t).exit_code == 0);
    std::ofstream(dir.str() + "/ids.jsonl") << R"({"input_ids": [2, 10, 11, 12]})" << "\n"
                                            << R"({"input_ids": [2, 13]})" << "\n";
    Result p = run("predict --checkpoint " + dir.str() + "/token_classification --input " + dir.str() +
                   "/ids.jsonl --output " + dir.str() + "/tok-pred/rows.jsonl 2>&1");
    INFO(p.output);
    REQUIRE(p.exit_code == 0);
    const std::vector<json> rows = read_log(dir.str() + "/tok-pred/rows.jsonl");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].at("predicted_labels").size() == 4);
    CHECK(rows[1].at("predicted_labels").size() == 2);
    CHECK_FALSE(rows[0].contains("labels"));
    CHECK_FALSE(read_json(dir.str() + "/tok-pred/test_results.json").contains("test_loss"));
    // Labels that do not line up with the ids, and ids past the vocab, are named.
    std::ofstream(dir.str() + "/bad.jsonl") << R"({"input_ids": [2, 10, 11], "labels": [0, 1]})" << "\n";
    Result bad = run("predict --checkpoint " + dir.str() + "/token_classification --input " + dir.str() +
                     "/bad.jsonl --output " + dir.str() + "/bad/rows.jsonl 2>&1");
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.output, Catch::Contains("bad.jsonl:1: \"labels\" has 2 entries, \"input_ids\" 3"));
    std::ofstream(dir.str() + "/big.jsonl") << R"({"input_ids": [2, 64]})" << "\n";
    bad = run("predict --checkpoint " + dir.str() + "/token_classification --input " + dir.str() +
              "/big.jsonl --output " + dir.str() + "/bad/rows.jsonl 2>&1");
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.output, Catch::Contains("token 1: id 64 is not below the model's vocab_size 64"));
    CHECK_FALSE(fs::exists(dir.str() + "/bad/rows.jsonl"));
  }
  SECTION("causal LM: five bytes are one window of five") {
    const TaskCase t = find("causal_lm");
    REQUIRE(train_task(dir, t).exit_code == 0);
    std::ofstream(dir.str() + "/short.txt") << "the c";
    Result p = run("predict --checkpoint " + dir.str() + "/causal_lm --input " + dir.str() + "/short.txt --output " +
                   dir.str() + "/clm-pred/rows.jsonl 2>&1");
    INFO(p.output);
    REQUIRE(p.exit_code == 0);
    const std::vector<json> rows = read_log(dir.str() + "/clm-pred/rows.jsonl");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].at("predicted_ids").size() == 4);
    CHECK(read_json(dir.str() + "/clm-pred/test_results.json").contains("test_loss"));
  }
}

TEST_CASE("hftrain generate continues prompts with the KV cache as without it, and refuses a classifier",
          "[integration][tasks][generate]") {
  TempDir dir("generate-cli");
  const std::vector<TaskCase> cases = task_cases(dir);
  REQUIRE(train_task(dir, cases[0]).exit_code == 0);  // causal_lm
  const std::string out = dir.str() + "/causal_lm";
  std::ofstream(dir.str() + "/prompts.txt") << "the cat\n\nThe mat sat\n";
  Result a = run("generate --checkpoint " + out + " --input " + dir.str() + "/prompts.txt --prompt 'on a' " +
                 "--max_new_tokens 12 --output " + dir.str() + "/gen/cached.jsonl 2>&1");
  Result b = run("generate --checkpoint " + out + " --input " + dir.str() + "/prompts.txt --prompt 'on a' " +
                 "--max_new_tokens 12 --no_cache --output " + dir.str() + "/gen/plain.jsonl 2>&1");
  INFO(a.output << b.output);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  const std::vector<json> cached = read_log(dir.str() + "/gen/cached.jsonl"), plain = read_log(dir.str() + "/gen/plain.jsonl");
  REQUIRE(cached.size() == 3);  // --prompt first, then the file's non-blank lines
  CHECK(cached[0]["prompt"] == "on a");
  CHECK(cached[2]["prompt"] == "The mat sat");
  for (size_t i = 0; i < cached.size(); ++i) {
    CHECK(cached[i]["generated_ids"].size() == 12);
    CHECK(cached[i]["generated_ids"] == plain[i]["generated_ids"]);
    // The byte tokenizer: the text is the ids' bytes.
    std::string bytes;
    for (const json& id : cached[i]["generated_ids"]) bytes += static_cast<char>(id.get<int>());
    CHECK(cached[i]["generated_text"] == bytes);
  }
  REQUIRE(train_task(dir, cases[2]).exit_code == 0);  // sequence_classification
  Result bad = run("generate --checkpoint " + dir.str() + "/sequence_classification --prompt x 2>&1");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("needs a causal LM") && Catch::Contains("BertForSequenceClassification"));
}

TEST_CASE("data.packing trains on packed rows: the tokens seen are the documents' own, no padding across them",
          "[integration][tasks][packing]") {
  TempDir dir("packing-cli");
  // 16 rows of 3 to 31 bytes, batch 4: padded batches hold each batch's longest row 4 times.
  std::string rows;
  int64_t bytes = 0, padded = 0;
  for (int b = 0; b < 4; ++b) {
    int64_t longest = 0;
    for (int i = 0; i < 4; ++i) {
      const int n = 3 + (b * 4 + i) * 7 % 29;
      rows += json{{"text", std::string(static_cast<size_t>(n), static_cast<char>('a' + i))}}.dump() + "\n";
      bytes += n;
      longest = std::max<int64_t>(longest, n);
    }
    padded += 4 * longest;
  }
  std::ofstream(dir.str() + "/rows.jsonl") << rows;
  const std::string cfg = write_config(dir) + " --set max_steps=-1 --set num_train_epochs=1" +
                          " --set gradient_accumulation_steps=1 --set eval_strategy=no --set save_strategy=no" +
                          " --set data.validation_split_percentage=0 --set data.group_texts=false" +
                          " --set include_num_input_tokens_seen=all --set train_sampling_strategy=sequential" +
                          " --set 'data.train={format: jsonl, path: " + dir.str() + "/rows.jsonl}' --set data.cache_dir=" +
                          dir.str() + "/cache";
  Result pad = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/pad");
  Result pack = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/pack --set data.packing=true");
  INFO(pad.output << pack.output);
  REQUIRE(pad.exit_code == 0);
  REQUIRE(pack.exit_code == 0);
  CHECK(logged(dir.str() + "/pad/log.jsonl", "num_input_tokens_seen").back() == padded);
  // block_size 32 holds every row's batch in rows of at most 32 tokens: the rows' padding only.
  const double packed = logged(dir.str() + "/pack/log.jsonl", "num_input_tokens_seen").back();
  CHECK(packed >= bytes);
  CHECK(packed < padded);
  Result bad = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/bad --set data.packing=true" +
                   " --set model.task=sequence_classification");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("data.packing packs documents for a causal LM"));
}

TEST_CASE("predict_with_generate scores the completions hftrain generate writes for each prompt",
          "[integration][tasks][generate]") {
  TempDir dir("predict-with-generate");
  // Prompt-completion rows: a word, "=", and the word reversed.
  std::vector<std::pair<std::string, std::string>> rows;
  for (int i = 0; i < 120; ++i) {
    std::string w;
    for (int k = 0; k < 3 + i % 3; ++k) w += static_cast<char>('a' + (i * 7 + k * 5) % 6);
    rows.emplace_back(w + "=", std::string(w.rbegin(), w.rend()));
  }
  auto write = [&](const std::string& path, size_t from, size_t to) {
    std::ofstream out(path);
    for (size_t i = from; i < to; ++i) out << json{{"prompt", rows[i].first}, {"text", rows[i].second}}.dump() << "\n";
  };
  write(dir.str() + "/train.jsonl", 0, 100);
  write(dir.str() + "/eval.jsonl", 100, 120);
  const std::string data = " --set data.group_texts=false --set data.cache_dir=" + dir.str() + "/cache" +
                           " --set 'data.train={format: jsonl, path: " + dir.str() + "/train.jsonl, prompt_field: prompt}'" +
                           " --set 'data.eval={format: jsonl, path: " + dir.str() + "/eval.jsonl, prompt_field: prompt}'";
  Result r = run("train --config " + write_config(dir) + data + " --set max_steps=40 --set eval_steps=40" +
                 " --set save_steps=40 --set 'metrics=[accuracy, exact_match]' --set predict_with_generate=true 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const json ev = last_eval(dir.str() + "/out");
  // The same completions through hftrain generate, scored here.
  std::string prompts;
  for (size_t i = 100; i < 120; ++i) prompts += rows[i].first + "\n";
  std::ofstream(dir.str() + "/prompts.txt") << prompts;
  Result g = run("generate --checkpoint " + dir.str() + "/out --input " + dir.str() + "/prompts.txt --ignore_eos" +
                 " --max_new_tokens 5 --output " + dir.str() + "/gen.jsonl 2>&1");
  INFO(g.output);
  REQUIRE(g.exit_code == 0);
  const std::vector<json> gen = read_log(dir.str() + "/gen.jsonl");
  REQUIRE(gen.size() == 20);
  int64_t right = 0, total = 0, exact = 0;
  for (size_t i = 0; i < 20; ++i) {
    const std::string& want = rows[100 + i].second;
    const auto ids = gen[i].at("generated_ids").get<std::vector<int64_t>>();
    bool all = true;
    for (size_t k = 0; k < want.size(); ++k) {
      const bool ok = k < ids.size() && ids[k] == static_cast<unsigned char>(want[k]);
      right += ok, all = all && ok, ++total;
    }
    exact += all;
  }
  CHECK(ev.at("eval_accuracy").get<double>() == Approx(static_cast<double>(right) / static_cast<double>(total)).epsilon(1e-12));
  CHECK(ev.at("eval_exact_match").get<double>() == Approx(static_cast<double>(exact) / 20.0).epsilon(1e-12));
  // Without generation the same checkpoint scores its argmax next tokens instead.
  Result e = run("evaluate --checkpoint " + dir.str() + "/out/checkpoint-40 --set predict_with_generate=false 2>&1");
  REQUIRE(e.exit_code == 0);
  CHECK(read_json(dir.str() + "/out/checkpoint-40/eval_results.json").at("eval_loss") == ev.at("eval_loss"));
}
