// LR schedules against transformers' get_scheduler (golden/schedulers.json).
#include "hftrain/optim/adamw.h"
#include "hftrain/optim/scheduler.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cmath>

using hftrain::test::golden;
using hftrain::test::read_json;
using json = nlohmann::json;

namespace {

std::unique_ptr<hftrain::AdamW> two_group_adamw(double lr) {
  hftrain::ParamGroup decay, no_decay;
  decay.params = {at::zeros({2}).set_requires_grad(true)};
  no_decay.params = {at::zeros({2}).set_requires_grad(true)};
  decay.lr = no_decay.lr = lr;
  decay.weight_decay = 0.01;
  return std::make_unique<hftrain::AdamW>(std::vector<hftrain::ParamGroup>{decay, no_decay}, hftrain::AdamWOptions{});
}

bool close(double got, double ref) { return std::abs(got - ref) <= std::max(1e-12 * std::abs(ref), 1e-15); }

}  // namespace

TEST_CASE("linear, cosine and constant_with_warmup give HF's learning rate at every step", "[unit][optim]") {
  json g = read_json(golden("schedulers.json"));
  const std::map<std::string, hftrain::SchedulerType> types = {
      {"linear", hftrain::SchedulerType::kLinear},
      {"cosine", hftrain::SchedulerType::kCosine},
      {"constant_with_warmup", hftrain::SchedulerType::kConstantWithWarmup}};
  int cases = 0;
  for (const json& c : g["cases"]) {
    auto it = types.find(c["type"].get<std::string>());
    if (it == types.end() || !c["scheduler_specific_kwargs"].empty()) continue;
    ++cases;
    auto opt = two_group_adamw(c["base_lr"].get<double>());
    hftrain::LambdaLR sched(*opt, it->second, c["num_warmup_steps"].get<int64_t>(),
                            c["num_training_steps"].get<int64_t>());
    const json& lr = c["lr"];
    for (size_t s = 0; s < lr.size(); ++s) {
      if (s > 0) sched.step();
      INFO(c["type"].get<std::string>() << " warmup " << c["num_warmup_steps"] << " step " << s);
      REQUIRE(close(opt->param_groups()[0].lr, lr[s].get<double>()));
      REQUIRE(close(opt->param_groups()[1].lr, lr[s].get<double>()));
    }
  }
  CHECK(cases == 5);  // linear x2, cosine x1 (the other sets num_cycles), constant_with_warmup x2
}

TEST_CASE("scheduler state_dict holds LambdaLR's keys in torch's order and values", "[unit][optim]") {
  json g = read_json(golden("schedulers.json"))["lambdalr_state_dict"];
  auto opt = two_group_adamw(1e-3);
  hftrain::LambdaLR sched(*opt, hftrain::SchedulerType::kCosine, 2, 10);
  for (int i = 0; i < 3; ++i) sched.step();
  auto d = sched.state_dict().toGenericDict();
  std::vector<std::string> keys;
  for (const auto& e : d) keys.push_back(e.key().toStringRef());
  CHECK(keys == g["keys_in_order"].get<std::vector<std::string>>());
  const json& e = g["entries"];
  CHECK(d.at("last_epoch").toInt() == e["last_epoch"]["value"].get<int64_t>());
  CHECK(d.at("_step_count").toInt() == e["_step_count"]["value"].get<int64_t>());
  CHECK(d.at("verbose").toBool() == false);
  auto last = d.at("_last_lr").toList();
  REQUIRE(last.size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(close(last.get(i).toDouble(), e["_last_lr"]["value"][i].get<double>()));
  CHECK(d.at("lr_lambdas").toList().size() == 2);
}

TEST_CASE("scheduler state round-trips: a loaded scheduler continues with the same rates", "[unit][optim]") {
  json g = read_json(golden("schedulers.json"));
  const json* cosine = nullptr;
  for (const json& c : g["cases"])
    if (c["type"] == "cosine" && c["scheduler_specific_kwargs"].empty()) cosine = &c;
  REQUIRE(cosine != nullptr);
  int64_t warmup = (*cosine)["num_warmup_steps"], total = (*cosine)["num_training_steps"];
  auto opt_a = two_group_adamw((*cosine)["base_lr"]);
  hftrain::LambdaLR a(*opt_a, hftrain::SchedulerType::kCosine, warmup, total);
  for (int i = 0; i < 7; ++i) a.step();
  auto opt_b = two_group_adamw((*cosine)["base_lr"]);
  hftrain::LambdaLR b(*opt_b, hftrain::SchedulerType::kCosine, warmup, total);
  b.load_state_dict(a.state_dict(), "test");
  b.step();
  CHECK(close(opt_b->param_groups()[0].lr, (*cosine)["lr"][8].get<double>()));
}
