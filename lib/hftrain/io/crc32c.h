// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected: 0x82F63B78), as TFRecord files use,
// and TensorFlow's masking of a stored CRC.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hftrain::io {

uint32_t crc32c(const void* data, size_t n);
inline uint32_t crc32c_masked(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

}  // namespace hftrain::io
