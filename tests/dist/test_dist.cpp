// The launcher's variables, and c10d over them: two processes started by scripts/launch
// rendezvous, broadcast and all-reduce on Gloo; a rank that dies stops the other.
#include "hftrain/dist/env.h"
#include "hftrain/dist/process_group.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace {

std::function<std::optional<std::string>(const char*)> env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

int free_port() {
  static int next = 29600 + static_cast<int>(::getpid() % 2000);
  return next += 7;
}

std::string launch(int nproc, const std::string& extra_env = "") {
  return extra_env + " " + std::string(HFTRAIN_SOURCE_DIR) + "/scripts/launch --nproc " + std::to_string(nproc) +
         " --master-port " + std::to_string(free_port()) + " -- " + HFTRAIN_TESTS_BIN +
         " '[.dist_worker]' 2>&1";
}

}  // namespace

TEST_CASE("rank and world come from torchrun's variables, else Slurm's; bad values are named", "[unit][dist]") {
  hftrain::DistEnv e = hftrain::dist_env(env_of({}));
  CHECK(e.world_size == 1);
  CHECK_FALSE(e.distributed());
  e = hftrain::dist_env(env_of({{"RANK", "3"}, {"LOCAL_RANK", "1"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "node0"},
                                {"MASTER_PORT", "1234"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "9"}}));
  CHECK(e.source == "torchrun");
  CHECK(e.rank == 3);
  CHECK(e.local_rank == 1);
  CHECK(e.world_size == 4);
  CHECK(e.master_addr == "node0");
  CHECK(e.master_port == 1234);
  e = hftrain::dist_env(env_of({{"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS", "8"},
                                {"MASTER_ADDR", "n"}, {"MASTER_PORT", "29500"}}));
  CHECK(e.source == "slurm");
  CHECK(e.rank == 5);
  CHECK(e.world_size == 8);
  using hftrain::test::require_error;
  require_error(hftrain::Error::kUser, [] { hftrain::dist_env(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}})); },
                {"rank 2 is outside a world of 2"});
  require_error(hftrain::Error::kUser, [] { hftrain::dist_env(env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})); },
                {"RANK=x"});
  require_error(hftrain::Error::kUser, [] { hftrain::dist_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}})); },
                {"MASTER_ADDR and MASTER_PORT"});
}

// Run by the tests below through scripts/launch, never on its own (hidden tag).
TEST_CASE("dist worker", "[.dist_worker]") {
  const hftrain::DistEnv env = hftrain::dist_env_from_process();
  REQUIRE(env.world_size == 2);
  if (std::getenv("HFTRAIN_TEST_DIE_RANK") && env.rank == std::atoi(std::getenv("HFTRAIN_TEST_DIE_RANK")))
    std::_Exit(7);  // a rank that dies before the rendezvous completes
  hftrain::ProcessGroup pg(env, std::chrono::milliseconds(20000));
  std::vector<at::Tensor> t = {env.rank == 0 ? at::arange(4, at::kFloat) : at::zeros({4}, at::kFloat)};
  pg.broadcast(t, 0);
  CHECK(t[0].equal(at::arange(4, at::kFloat)));
  std::vector<at::Tensor> r = {at::full({3}, static_cast<double>(env.rank + 1), at::kFloat)};
  pg.all_reduce_sum(r);
  CHECK(r[0].equal(at::full({3}, 3.0, at::kFloat)));
  pg.barrier();
}

TEST_CASE("two processes from scripts/launch rendezvous and all-reduce on Gloo", "[dist]") {
  auto r = hftrain::test::run_command(launch(2));
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

TEST_CASE("when one rank dies the launcher stops the other and exits with its code", "[dist]") {
  auto r = hftrain::test::run_command(launch(2, "HFTRAIN_TEST_DIE_RANK=1"));
  INFO(r.output);
  CHECK(r.exit_code == 7);
  CHECK_THAT(r.output, Catch::Contains("stopping the others"));
}

TEST_CASE("hftrain train as one rank of several refuses with exit 2 and writes nothing", "[dist]") {
  hftrain::test::TempDir dir("ddp-refuse");
  auto r = hftrain::test::run_command("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 " +
                                      std::string(HFTRAIN_BIN) + " train --set output_dir=" + dir.str() + "/out 2>&1");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("rank 1 of 2 (torchrun)"));
  CHECK_FALSE(std::filesystem::exists(dir.str() + "/out"));
}
