// Small string helpers shared by config parsing and registries.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `name`, or "" when none is plausibly a typo of it.
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);

// `unknown optimizer "adamw_torh"; known: a, b, c; did you mean "adamw_torch"?`
std::string unknown_name_message(const std::string& what, const std::string& name,
                                 const std::vector<std::string>& known);

std::string join(const std::vector<std::string>& parts, const std::string& sep);

// s with every non-overlapping occurrence of `from` (left to right) replaced by `to`, as
// Python's str.replace; an empty `from` changes nothing.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

// `s` for an error message: whole up to `max` bytes, else its start and how much was cut, so
// that a bad value of megabytes still makes one readable line.
std::string clip(const std::string& s, size_t max = 200);

// Python's round(x, ndigits): the correctly rounded decimal, read back as a double (HF rounds
// its logged loss and speed metrics so).
double py_round(double x, int digits);

}  // namespace hftrain
