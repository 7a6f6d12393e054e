// Architectures through the binary: a Llama checkpoint fine-tuned from an HF directory,
// resumed bit for bit, and exported as a directory transformers reads.
#include "cli/cli_util.h"
#include "hftrain/io/safetensors.h"

#include <catch2/catch.hpp>

#include <filesystem>

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
