// Internal to config/: the origin-aware error context, and HF's __post_init__ rules that
// training_args_read applies after the table has read every field.
#pragma once

#include "hftrain/config/fields.h"
#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"

namespace hftrain {

// Where a key came from, for messages; bad() raises the one-line type error.
struct Ctx {
  const WhereFn& where;
  [[noreturn]] void bad(const std::string& key, const nlohmann::json& v, const std::string& expected) const {
    fail("key \"{}\" must be {}, got {} (from {})", key, expected, clip(v.dump()), where(key));
  }
};

// HF's __post_init__ defaults and cross-field rules, plus hftrain's deliberate refusals.
void post_init(TrainingArguments& a, const Ctx& c, bool has_eval_dataset);

}  // namespace hftrain
