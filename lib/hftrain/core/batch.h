// A batch is a map of named tensors: input_ids (B,T), attention_mask (B,T), labels (B,T).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace hftrain {

using Batch = std::map<std::string, at::Tensor>;

}  // namespace hftrain
