// JSON files: read with a user error naming the file, written atomically in the layout
// Python's json.dumps(indent=2, sort_keys=True) + "\n" gives.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace hftrain::io {

nlohmann::json read_json_file(const std::string& path);
void write_json_file(const std::string& path, const nlohmann::json& value);

}  // namespace hftrain::io
