#include "hftrain/generate.h"

#include "hftrain/core/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <limits>

namespace hftrain {

at::Tensor warp_logits(const at::Tensor& logits, const GenerateOptions& o) {
  at::Tensor scores = logits.to(at::kFloat);
  const double ninf = -std::numeric_limits<double>::infinity();
  // TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper (min_tokens_to_keep 1).
  if (o.temperature != 1.0) scores = scores.div(o.temperature);
  if (o.top_k > 0) {
    const int64_t k = std::min<int64_t>(o.top_k, scores.size(-1));
    const at::Tensor kth = std::get<0>(at::topk(scores, k)).select(-1, k - 1);
    scores = scores.masked_fill(scores.lt(kth), ninf);
  }
  if (o.top_p < 1.0) {
    const auto [sorted, order] = at::sort(scores, /*dim=*/-1, /*descending=*/false);
    at::Tensor remove = sorted.softmax(-1).cumsum(-1).le(1.0 - o.top_p);
    remove.select(-1, remove.size(-1) - 1).fill_(false);  // the most likely token stays
    scores = scores.masked_fill(at::zeros_like(remove).scatter(-1, order, remove), ninf);
  }
  return scores;
}

std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& o) {
  HFT_CHECK(!prompt.empty(), "generation needs a prompt of at least one token");
  HFT_CHECK(o.max_new_tokens >= 0, "max_new_tokens must be >= 0, got {}", o.max_new_tokens);
  HFT_CHECK(!o.do_sample || o.temperature > 0, "temperature must be > 0 when sampling, got {}", o.temperature);
  HFT_CHECK(o.top_p > 0 && o.top_p <= 1, "top_p must be in (0, 1], got {}", o.top_p);
  HFT_CHECK(o.top_k >= 0, "top_k must be >= 0, got {}", o.top_k);
  const bool was_training = model.is_training();
  model.eval();
  at::NoGradGuard no_grad;
  const at::Device device = model.parameters().empty() ? at::Device(at::kCPU) : model.parameters().front().device();
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  const bool cached = o.use_cache && model.supports_kv_cache();
  KvCache cache;
  std::vector<int64_t> all = prompt, out;
  at::Tensor step_ids = at::tensor(prompt, at::kLong).view({1, -1}).to(device);  // the prefill
  for (int64_t n = 0; n < o.max_new_tokens; ++n) {
    at::Tensor logits;
    if (cached) {
      logits = model.forward_cached(step_ids, cache);
    } else {
      Batch batch{{"input_ids", at::tensor(all, at::kLong).view({1, -1}).to(device)}};
      logits = model.forward(batch, std::nullopt).logits;
    }
    const at::Tensor last = logits.select(1, logits.size(1) - 1).squeeze(0).to(at::kCPU);  // (V)
    int64_t next;
    if (o.do_sample) {
      const at::Tensor probs = warp_logits(last, o).softmax(-1);
      next = at::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
    } else {
      next = last.argmax().item<int64_t>();
    }
    out.push_back(next);
    all.push_back(next);
    if (std::find(o.eos_token_ids.begin(), o.eos_token_ids.end(), next) != o.eos_token_ids.end()) break;
    step_ids = at::tensor({next}, at::kLong).view({1, 1}).to(device);
  }
  if (was_training) model.train();
  return out;
}

}  // namespace hftrain
