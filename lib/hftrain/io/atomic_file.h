// Crash-safe writes: content goes to a temporary sibling, is fsynced, then renamed over
// the target, so a reader sees either the old file or the whole new one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hftrain::io {

void write_file_atomic(const std::string& path, std::string_view bytes);
// The same, for content in several pieces written back to back (a header and tensor
// buffers), so a large file is never gathered into one more copy in memory.
void write_file_atomic_parts(const std::string& path, const std::vector<std::string_view>& parts);
std::string read_file(const std::string& path);  // user error naming the path if unreadable
void fsync_path(const std::string& path);        // a file or a directory

}  // namespace hftrain::io
