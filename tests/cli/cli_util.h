// Helpers for tests that drive the hftrain binary.
#pragma once

#include "test_util.h"

#include <fstream>
#include <string>
#include <vector>

namespace hftrain::test {

using Result = CommandRun;

inline Result run(const std::string& args) { return run_command(std::string(HFTRAIN_BIN) + " " + args); }

// A small run: 89 train windows of 32 bytes, batch 4, accumulation 2 -> 12 optimizer
// steps per epoch, the last a single micro-batch; dropout on, so RNG state matters.
inline std::string write_config(const TempDir& dir, const std::string& extra = "") {
  std::string path = dir.str() + "/run.yaml";
  std::ofstream(path) << "output_dir: " << dir.str() << "/out\n"
                      << R"(max_steps: 16
per_device_train_batch_size: 4
per_device_eval_batch_size: 8
gradient_accumulation_steps: 2
learning_rate: 3.0e-3
weight_decay: 0.01
lr_scheduler_type: cosine
warmup_steps: 3
logging_steps: 1
eval_strategy: steps
eval_steps: 6
save_steps: 6
seed: 3
model:
  type: gpt2
  config: {vocab_size: 256, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2,
           resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1}
data:
  block_size: 32
  validation_split_percentage: 5
  train: {format: generated, num_bytes: 3000, seed: 1}
)" << extra;
  return path;
}

inline std::vector<nlohmann::json> read_log(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The values of `key` in the log's rows that have it, in order (loss, eval_loss, ...).
inline std::vector<double> logged(const std::string& log_path, const char* key) {
  std::vector<double> out;
  for (const nlohmann::json& row : read_log(log_path))
    if (row.contains(key)) out.push_back(row.at(key).get<double>());
  return out;
}

inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace hftrain::test
