// Architectures through the binary: a Llama checkpoint fine-tuned from an HF directory,
// resumed bit for bit, and exported as a directory transformers reads.
// safetensors.h brings glog's CHECK: included first, so that Catch's CHECK is the one defined.
#include "hftrain/io/safetensors.h"
#include "cli/cli_util.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using namespace hftrain::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("a pretrained Llama directory fine-tunes, resumes bit for bit and exports as HF's layout",
          "[integration][llama]") {
  TempDir full("llama-full"), part("llama-part");
  const std::string model = " --set 'model={pretrained: " + golden("models/llama-clm-tied") + "}'" +
                            " --set data.block_size=32 --set max_steps=8 --set save_steps=4 --set eval_steps=4";
  Result a = run("train --config " + write_config(full) + model);
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const std::string out = full.str() + "/out";
  auto tensors = hftrain::io::safetensors_load(out + "/model.safetensors").tensors;
  CHECK(tensors.size() == 20);  // the tied lm_head is not stored
  CHECK(tensors.count("model.layers.1.self_attn.k_proj.weight"));
  json cfg = read_json(out + "/config.json");
  CHECK(cfg.at("architectures") == json::array({"LlamaForCausalLM"}));
  CHECK(cfg.at("num_key_value_heads") == 2);
  CHECK(cfg.at("tie_word_embeddings") == true);

  fs::create_directories(part.str() + "/out");
  fs::copy(out + "/checkpoint-4", part.str() + "/out/checkpoint-4", fs::copy_options::recursive);
  Result b = run("resume --checkpoint " + part.str() + "/out/checkpoint-4 --set output_dir=" + part.str() + "/out");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  CHECK(file_bytes(part.str() + "/out/model.safetensors") == file_bytes(out + "/model.safetensors"));
  std::vector<double> la, lb;
  for (const json& e : read_log(out + "/log.jsonl"))
    if (e.contains("loss") && e["step"].get<int>() > 4) la.push_back(e["loss"]);
  for (const json& e : read_log(part.str() + "/out/log.jsonl"))
    if (e.contains("loss")) lb.push_back(e["loss"]);
  CHECK(la.size() == 4);
  CHECK(la == lb);
}

TEST_CASE("sequence classification trains on labelled JSON Lines and exports id2label and pad_token_id",
          "[integration][classification]") {
  TempDir dir("seqcls");
  std::string rows;
  // The class is the sentence's first letter: learnable, and the labels are strings.
  const char* names[] = {"neg", "neutral", "pos"};
  for (int i = 0; i < 96; ++i) {
    const int c = (i * 7) % 3;
    rows += json{{"sentence", std::string(1, "xyz"[c]) + std::string(3 + i % 9, 'a' + i % 5)}, {"label", names[c]}}.dump() + "\n";
  }
  std::ofstream(dir.str() + "/rows.jsonl") << rows;
  Result r = run("train --config " + write_config(dir) +
                 " --set max_steps=12 --set eval_steps=6 --set save_steps=6 --set learning_rate=0.01" +
                 " --set 'metrics=[accuracy]' --set model.task=sequence_classification --set data.cache_dir=" +
                 dir.str() + "/cache --set 'data.train={format: jsonl, path: " + dir.str() +
                 "/rows.jsonl, text_field: sentence}' --set data.validation_split_percentage=25");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json cfg = read_json(dir.str() + "/out/config.json");
  CHECK(cfg.at("architectures") == json::array({"GPT2ForSequenceClassification"}));
  CHECK(cfg.at("id2label") == json{{"0", "neg"}, {"1", "neutral"}, {"2", "pos"}});
  CHECK(cfg.at("pad_token_id") == 0);
  auto tensors = hftrain::io::safetensors_load(dir.str() + "/out/model.safetensors").tensors;
  CHECK(tensors.at("score.weight").sizes().vec() == std::vector<int64_t>{3, 32});
  std::vector<json> evals;
  for (const json& e : read_log(dir.str() + "/out/log.jsonl"))
    if (e.contains("eval_accuracy")) evals.push_back(e);
  REQUIRE(evals.size() == 2);
  // Chance is 1/3; the class is in the first token, which the pooled last token attends to.
  CHECK(evals.back()["eval_accuracy"].get<double>() > 0.9);

  // predict classes further rows of the same kind: labelled ones get test metrics, plain lines
  // only predictions.
  std::string test_rows, lines;
  for (int i = 96; i < 126; ++i) {
    const int c = (i * 7) % 3;
    const std::string text = std::string(1, "xyz"[c]) + std::string(3 + i % 9, 'a' + i % 5);
    test_rows += json{{"sentence", text}, {"label", names[c]}}.dump() + "\n";
    lines += text + "\n";
  }
  std::ofstream(dir.str() + "/test.jsonl") << test_rows;
  std::ofstream(dir.str() + "/test.txt") << lines;
  Result p = run("predict --checkpoint " + dir.str() + "/out --input " + dir.str() + "/test.jsonl --output " +
                 dir.str() + "/pred/labelled.jsonl --logits " + dir.str() + "/pred/logits.safetensors 2>&1");
  INFO(p.output);
  REQUIRE(p.exit_code == 0);
  const std::vector<json> labelled = read_log(dir.str() + "/pred/labelled.jsonl");
  REQUIRE(labelled.size() == 30);
  CHECK(labelled[2]["label"] == names[(98 * 7) % 3]);
  // --logits: one row of class scores per example, whose argmax is the predicted class.
  at::Tensor logits = hftrain::io::safetensors_load(dir.str() + "/pred/logits.safetensors").tensors.at("logits");
  REQUIRE(logits.sizes().vec() == std::vector<int64_t>{30, 3});
  for (int i = 0; i < 30; ++i) CHECK(logits[i].argmax().item<int64_t>() == labelled[i]["predicted_id"].get<int64_t>());
  CHECK(read_json(dir.str() + "/pred/test_results.json")["test_accuracy"].get<double>() > 0.9);
  p = run("predict --checkpoint " + dir.str() + "/out --input " + dir.str() + "/test.txt --output " + dir.str() +
          "/plain/preds.jsonl 2>&1");
  INFO(p.output);
  REQUIRE(p.exit_code == 0);
  const std::vector<json> plain = read_log(dir.str() + "/plain/preds.jsonl");
  REQUIRE(plain.size() == 30);
  int right = 0;
  for (int i = 0; i < 30; ++i) right += plain[i]["predicted_label"] == names[((96 + i) * 7) % 3];
  CHECK(right >= 27);
  CHECK_FALSE(read_json(dir.str() + "/plain/test_results.json").contains("test_loss"));

  // An eval label the train data lacks is named.
  std::ofstream(dir.str() + "/eval.jsonl") << json{{"sentence", "xa"}, {"label", "mixed"}}.dump() << "\n";
  Result bad = run("train --config " + write_config(dir) + " --set model.task=sequence_classification" +
                   " --set output_dir=" + dir.str() + "/out2 --set data.cache_dir=" + dir.str() + "/cache" +
                   " --set 'data.train={format: jsonl, path: " + dir.str() + "/rows.jsonl, text_field: sentence}'" +
                   " --set 'data.eval={format: jsonl, path: " + dir.str() + "/eval.jsonl, text_field: sentence}'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("label \"mixed\"") && Catch::Contains("neg, neutral, pos"));
}

TEST_CASE("BERT masked LM trains with a WordPiece vocab; masking is the same on loader threads and after resume",
          "[integration][bert]") {
  TempDir dir("bert-mlm");
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
  vocab += "the\ncat\nsat\non\nmat\n.\n";
  std::ofstream(dir.str() + "/vocab.txt") << vocab;
  std::string text;
  for (int i = 0; i < 400; ++i) text += (i % 3 ? "the cat sat on the mat. " : "The mat sat on a cat.\n");
  std::ofstream(dir.str() + "/train.txt") << text;
  const std::string common =
      " --set 'model={type: bert, config: {vocab_size: 64, hidden_size: 32, num_hidden_layers: 2, "
      "num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 32}}'"
      " --set data.tokenizer=" + dir.str() + "/vocab.txt --set 'metrics=[accuracy]' --set data.cache_dir=" + dir.str() +
      "/cache --set 'data.train={format: text, path: " + dir.str() + "/train.txt}' --set max_steps=8" +
      " --set save_steps=4 --set eval_steps=4";
  Result a = run("train --config " + write_config(dir) + common + " --set output_dir=" + dir.str() + "/a");
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  json cfg = read_json(dir.str() + "/a/config.json");
  CHECK(cfg.at("architectures") == json::array({"BertForMaskedLM"}));
  auto tensors = hftrain::io::safetensors_load(dir.str() + "/a/model.safetensors").tensors;
  CHECK(tensors.count("cls.predictions.bias"));
  CHECK_FALSE(tensors.count("cls.predictions.decoder.weight"));  // tied to the word embeddings
  std::vector<double> la;
  for (const json& e : read_log(dir.str() + "/a/log.jsonl"))
    if (e.contains("loss")) la.push_back(e["loss"]);
  REQUIRE(la.size() == 8);
  CHECK(la.back() < la.front());

  Result b = run("train --config " + write_config(dir) + common + " --set output_dir=" + dir.str() +
                 "/b --set dataloader_num_workers=2");
  REQUIRE(b.exit_code == 0);
  CHECK(file_bytes(dir.str() + "/b/model.safetensors") == file_bytes(dir.str() + "/a/model.safetensors"));
  fs::create_directories(dir.str() + "/c");
  fs::copy(dir.str() + "/a/checkpoint-4", dir.str() + "/c/checkpoint-4", fs::copy_options::recursive);
  Result c = run("resume --checkpoint " + dir.str() + "/c/checkpoint-4 --set output_dir=" + dir.str() + "/c");
  INFO(c.output);
  REQUIRE(c.exit_code == 0);
  CHECK(file_bytes(dir.str() + "/c/model.safetensors") == file_bytes(dir.str() + "/a/model.safetensors"));
}

TEST_CASE("gradient_checkpointing trains to the same bytes as without it", "[integration][checkpointing]") {
  TempDir dir("ckpt-train");
  const std::string cfg = write_config(dir) + " --set max_steps=4 --set save_strategy=no";
  Result a = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/a");
  Result b = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/b --gradient_checkpointing true");
  // torch.utils.checkpoint's use_reentrant either way is the same computation.
  Result c = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/c --gradient_checkpointing true" +
                 " --set 'gradient_checkpointing_kwargs={use_reentrant: false}'");
  INFO(a.output << b.output << c.output);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  REQUIRE(c.exit_code == 0);
  CHECK(file_bytes(dir.str() + "/a/model.safetensors") == file_bytes(dir.str() + "/b/model.safetensors"));
  CHECK(file_bytes(dir.str() + "/a/model.safetensors") == file_bytes(dir.str() + "/c/model.safetensors"));
  Result bad = run("train --config " + cfg + " --set output_dir=" + dir.str() + "/d --gradient_checkpointing true" +
                   " --set 'gradient_checkpointing_kwargs={preserve_rng_state: false}'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("preserve_rng_state false is not supported"));
}

TEST_CASE("model.torch_dtype writes the final model in bfloat16 while checkpoints keep float32 and resume",
          "[integration][models]") {
  hftrain::test::TempDir dir("export-dtype");
  const std::string cfg = hftrain::test::write_config(dir);
  hftrain::test::Result r =
      hftrain::test::run("train --config " + cfg + " --set model.torch_dtype=bfloat16 --set model.max_shard_size=20KB 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string out = dir.str() + "/out";
  CHECK(hftrain::test::read_json(out + "/config.json").at("torch_dtype") == "bfloat16");
  const auto index = hftrain::test::read_json(out + "/model.safetensors.index.json");
  const std::string first = index.at("weight_map").at("transformer.wte.weight").get<std::string>();
  for (const auto& [name, t] : hftrain::io::safetensors_load(out + "/" + first).tensors)
    CHECK(t.scalar_type() == at::kBFloat16);
  CHECK(hftrain::test::read_json(out + "/checkpoint-6/config.json").at("torch_dtype") == "float32");
  hftrain::test::Result resumed = hftrain::test::run("resume --checkpoint " + out + "/checkpoint-6 --set output_dir=" +
                                                     dir.str() + "/b 2>&1");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
}

TEST_CASE("a hub-style directory stored in bfloat16 trains, evaluates and exports", "[integration][models]") {
  TempDir dir("bf16-hub");
  const std::string cfg = dir.str() + "/run.yaml";
  std::ofstream(cfg) << "output_dir: " << dir.str() << "/out\nmax_steps: 6\nsave_steps: 6\nlogging_steps: 2\n"
                     << "per_device_train_batch_size: 4\nlearning_rate: 1.0e-3\n"
                     << "model: {pretrained: " << golden("models/llama-bf16-weights") << "}\n"
                     << "data: {tokenizer: byte, block_size: 32, train: {format: generated, num_bytes: 4000}}\n";
  Result r = run("train --config " + cfg + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string out = dir.str() + "/out";
  CHECK(read_json(out + "/config.json").at("model_type") == "llama");
  CHECK(read_json(out + "/config.json").at("torch_dtype") == "float32");
  for (const auto& [name, t] : hftrain::io::safetensors_load(out + "/model.safetensors").tensors)
    CHECK(t.scalar_type() == at::kFloat);
  Result e = run("evaluate --checkpoint " + out + "/checkpoint-6 2>&1");
  INFO(e.output);
  CHECK(e.exit_code == 0);
  CHECK(read_json(out + "/checkpoint-6/eval_results.json").contains("eval_loss"));
}

TEST_CASE("a LoRA run writes PEFT's adapter files, resumes bit for bit, evaluates and exports merged weights",
          "[integration][lora]") {
  TempDir full("lora-full"), part("lora-part");
  const std::string base = golden("lora/llama-lora-qv/base");
  auto write = [&](const TempDir& dir) {
    const std::string cfg = dir.str() + "/run.yaml";
    std::ofstream(cfg) << "output_dir: " << dir.str() << "/out\nmax_steps: 8\nsave_steps: 4\nlogging_steps: 1\n"
                       << "eval_strategy: steps\neval_steps: 4\n"
                       << "per_device_train_batch_size: 4\nlearning_rate: 1.0e-2\n"
                       << "model: {pretrained: " << base << "}\n"
                       << "peft: {r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj], save_merged: true}\n"
                       << "data: {tokenizer: byte, block_size: 16, validation_split_percentage: 10, "
                       << "train: {format: generated, num_bytes: 6000}}\n";
    return cfg;
  };
  Result a = run("train --config " + write(full) + " 2>&1");
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  CHECK(a.output.find("trainable parameters 1792 of 131136") != std::string::npos);  // PEFT's counts for this base
  const std::string out = full.str() + "/out";
  // PEFT's layout: the adapter alone, its keys as the PEFT-made file of the same config.
  CHECK_FALSE(fs::exists(out + "/model.safetensors"));
  CHECK_FALSE(fs::exists(out + "/checkpoint-4/model.safetensors"));
  const auto want = hftrain::io::safetensors_load(golden("lora/llama-lora-qv/adapter_init/adapter_model.safetensors")).tensors;
  for (const std::string dir : {out, out + "/checkpoint-4"}) {
    INFO(dir);
    const auto got = hftrain::io::safetensors_load(dir + "/adapter_model.safetensors").tensors;
    REQUIRE(got.size() == want.size());
    for (const auto& [k, v] : want) CHECK((got.count(k) && got.at(k).sizes() == v.sizes()));
    json cfg = read_json(dir + "/adapter_config.json");
    CHECK(cfg.at("peft_type") == "LORA");
    CHECK(cfg.at("base_model_name_or_path") == base);
    CHECK(cfg.at("target_modules") == json::array({"q_proj", "v_proj"}));
  }
  // The base did not move: the merged model differs from it only in q_proj and v_proj.
  const auto merged = hftrain::io::safetensors_load(out + "/merged/model.safetensors").tensors;
  const auto base_w = hftrain::io::safetensors_load(base + "/model.safetensors").tensors;
  REQUIRE(merged.size() == base_w.size());
  for (const auto& [k, v] : base_w) {
    INFO(k);
    const bool adapted = k.find("q_proj") != std::string::npos || k.find("v_proj") != std::string::npos;
    CHECK(merged.at(k).equal(v) != adapted);
  }
  CHECK(read_json(out + "/merged/config.json").at("architectures") == json::array({"LlamaForCausalLM"}));

  // Resume from checkpoint-4: the same adapter bytes and losses as the uninterrupted run.
  fs::create_directories(part.str() + "/out");
  fs::copy(out + "/checkpoint-4", part.str() + "/out/checkpoint-4", fs::copy_options::recursive);
  Result b = run("resume --checkpoint " + part.str() + "/out/checkpoint-4 --set output_dir=" + part.str() + "/out 2>&1");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  CHECK(file_bytes(part.str() + "/out/adapter_model.safetensors") == file_bytes(out + "/adapter_model.safetensors"));

  // evaluate reads the adapter on top of the base, and gets the in-training eval's loss.
  Result e = run("evaluate --checkpoint " + out + "/checkpoint-8 2>&1");
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  double logged_eval = 0;
  for (const json& entry : read_log(out + "/log.jsonl"))
    if (entry.contains("eval_loss") && entry["step"] == 8) logged_eval = entry["eval_loss"];
  CHECK(read_json(out + "/checkpoint-8/eval_results.json").at("eval_loss").get<double>() ==
        Approx(logged_eval).epsilon(1e-6));

  // predict reads it the same way.
  std::ofstream(full.str() + "/prompts.txt") << "the quick brown fox jumps over\n";
  Result p = run("predict --checkpoint " + out + "/checkpoint-8 --input " + full.str() + "/prompts.txt --output " +
                 full.str() + "/pred.jsonl 2>&1");
  INFO(p.output);
  CHECK(p.exit_code == 0);
  CHECK(fs::exists(full.str() + "/pred.jsonl"));

  // Continuing an adapter (here PEFT's own) starts from its weights.
  TempDir cont("lora-continue");
  const std::string cfg = cont.str() + "/run.yaml";
  std::ofstream(cfg) << "output_dir: " << cont.str() << "/out\nmax_steps: 1\nsave_strategy: \"no\"\nlearning_rate: 0.0\n"
                     << "model: {pretrained: " << base << "}\n"
                     << "peft: {adapter: " << golden("lora/llama-lora-qv/adapter_init") << "}\n"
                     << "data: {tokenizer: byte, block_size: 16, train: {format: generated, num_bytes: 2000}}\n";
  Result c = run("train --config " + cfg + " 2>&1");
  INFO(c.output);
  REQUIRE(c.exit_code == 0);
  const auto continued = hftrain::io::safetensors_load(cont.str() + "/out/adapter_model.safetensors").tensors;
  for (const auto& [k, v] : want) CHECK(continued.at(k).equal(v));  // learning rate 0: unchanged
}
