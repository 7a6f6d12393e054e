// Gradient checkpointing changes memory, not numbers: the golden gradients still match, and
// with dropout on the recompute draws the masks the first pass drew.
#include "hftrain/builtins.h"
#include "hftrain/models/gpt2.h"
#include "hftrain/models/hf_model_dir.h"
#include "models/golden_model.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

using hftrain::test::golden;

TEST_CASE("with gradient checkpointing every architecture still matches transformers' gradients",
          "[models][checkpointing]") {
  hftrain::register_builtins();
  for (const std::string name : {"gpt2-clm", "llama-clm", "bert-mlm", "bert-seqcls"}) {
    INFO(name);
    hftrain::ModelOptions opts;
    opts.pretrained = golden("models/" + name);
    auto model = hftrain::model_create(opts);
    model->set_gradient_checkpointing(true);
    hftrain::test::check_against_golden(*model, "models/" + name + "/");
  }
}

TEST_CASE("checkpointed blocks recompute with the dropout masks of the first pass", "[models][checkpointing]") {
  hftrain::Gpt2Config c;
  c.vocab_size = 50, c.n_positions = 16, c.n_embd = 32, c.n_layer = 3, c.n_head = 2;
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0.2;
  at::manual_seed(0);
  hftrain::Gpt2LMHeadModel model(c);
  model.train();
  hftrain::Batch batch{{"input_ids", at::randint(50, {4, 16}, at::kLong)}};
  batch["labels"] = batch["input_ids"];
  auto run = [&](bool on) {
    model.set_gradient_checkpointing(on);
    model.zero_grad();
    at::manual_seed(7);
    at::Tensor loss = model.forward(batch, std::nullopt).loss;
    loss.backward();
    std::vector<at::Tensor> grads;
    for (const auto& p : model.parameters()) grads.push_back(p.grad().clone());
    grads.push_back(loss.detach());
    grads.push_back(at::rand({1}));  // the RNG stream after the step
    return grads;
  };
  const auto plain = run(false), ckpt = run(true);
  REQUIRE(plain.size() == ckpt.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    INFO("tensor " << i);
    CHECK(plain[i].equal(ckpt[i]));
  }
}
