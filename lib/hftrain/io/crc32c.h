// Checksums: CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected: 0x82F63B78), as TFRecord
// files and hftrain's checkpoint manifest use, with TensorFlow's masking of a stored CRC; and
// CRC-32 (IEEE 802.3, reflected 0xEDB88320), the one zip archives carry for each member.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hftrain::io {

// `crc` continues an earlier call over the preceding bytes (0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
inline uint32_t crc32c_masked(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace hftrain::io
