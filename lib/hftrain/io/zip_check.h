// The zip archives torch.save writes (optimizer.pt, rng_state.pth, ...) carry a CRC-32 for
// each member, which LibTorch's reader does not check: a flipped byte in a tensor would load
// as a wrong value. zip_check verifies them all before the archive is read.
#pragma once

#include <string>

namespace hftrain::io {

// A user error naming the file, and the member when one is damaged, unless every member
// of the (stored, uncompressed; zip64 too) archive at `path` has the CRC-32 it records.
void zip_check(const std::string& path);

}  // namespace hftrain::io
