#include "hftrain/io/zip_check.h"

#include "hftrain/core/error.h"
#include "hftrain/io/crc32c.h"
#include "hftrain/io/mmap_file.h"

#include <cstdint>
#include <cstring>

namespace hftrain::io {

namespace {

// Little-endian fields of the zip format (APPNOTE.TXT), bounds checked against the file.
struct Reader {
  const unsigned char* base;
  size_t size;
  const std::string& path;

  void need(uint64_t at, uint64_t n) const {
    if (at > size || n > size - at) fail("{}: not a whole zip archive (a record runs past its end)", path);
  }
  uint64_t le(uint64_t at, int bytes) const {
    need(at, static_cast<uint64_t>(bytes));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | base[at + static_cast<uint64_t>(i)];
    return v;
  }
};

constexpr uint32_t kEndOfDirectory = 0x06054b50, kZip64Locator = 0x07064b50, kZip64End = 0x06064b50;
constexpr uint32_t kDirectoryEntry = 0x02014b50, kLocalHeader = 0x04034b50;

}  // namespace

void zip_check(const std::string& path) {
  const MappedFile file(path);
  const Reader r{file.data(), file.size(), path};
  // The end-of-directory record sits in the last 22 + 65535 (its comment) bytes.
  HFT_CHECK(r.size >= 22, "{}: not a torch pickle (a zip archive): {} bytes", path, r.size);
  uint64_t eocd = r.size - 22;
  const uint64_t lowest = r.size > 22 + 65535 ? r.size - 22 - 65535 : 0;
  while (r.le(eocd, 4) != kEndOfDirectory) {
    HFT_CHECK(eocd > lowest, "{}: not a torch pickle (a zip archive): no end-of-directory record; the file is damaged or truncated",
              path);
    --eocd;
  }
  uint64_t entries = r.le(eocd + 10, 2), dir = r.le(eocd + 16, 4);
  if (eocd >= 20 && r.le(eocd - 20, 4) == kZip64Locator) {  // zip64: counts and offsets in 64 bits
    const uint64_t end64 = r.le(eocd - 20 + 8, 8);
    HFT_CHECK(r.le(end64, 4) == kZip64End, "{}: damaged zip64 end-of-directory record", path);
    entries = r.le(end64 + 32, 8);
    dir = r.le(end64 + 48, 8);
  }
  uint64_t at = dir;
  for (uint64_t i = 0; i < entries; ++i) {
    HFT_CHECK(r.le(at, 4) == kDirectoryEntry, "{}: damaged zip directory (entry {} of {})", path, i, entries);
    const uint64_t method = r.le(at + 10, 2);
    const uint32_t crc = static_cast<uint32_t>(r.le(at + 16, 4));
    uint64_t csize = r.le(at + 20, 4), usize = r.le(at + 24, 4);
    const uint64_t name_len = r.le(at + 28, 2), extra_len = r.le(at + 30, 2), comment_len = r.le(at + 32, 2);
    uint64_t local = r.le(at + 42, 4);
    r.need(at + 46, name_len);
    const std::string name(reinterpret_cast<const char*>(r.base + at + 46), name_len);
    // Sizes and offset saturated at 0xFFFFFFFF are in the zip64 extra field, in this order.
    for (uint64_t e = at + 46 + name_len, end = e + extra_len; e + 4 <= end;) {
      const uint64_t id = r.le(e, 2), len = r.le(e + 2, 2);
      if (id == 1) {
        uint64_t f = e + 4;
        if (usize == 0xFFFFFFFFu) usize = r.le(f, 8), f += 8;
        if (csize == 0xFFFFFFFFu) csize = r.le(f, 8), f += 8;
        if (local == 0xFFFFFFFFu) local = r.le(f, 8);
      }
      e += 4 + len;
    }
    HFT_CHECK(method == 0 && csize == usize, "{}: member {} is compressed (method {}); torch.save stores members",
              path, name, method);
    HFT_CHECK(r.le(local, 4) == kLocalHeader, "{}: damaged zip: member {} has no local header", path, name);
    const uint64_t data = local + 30 + r.le(local + 26, 2) + r.le(local + 28, 2);
    r.need(data, csize);
    const uint32_t got = crc32(r.base + data, csize);
    HFT_CHECK(got == crc, "{}: member {} is damaged (CRC-32 {:08x}, the archive records {:08x})", path, name, got,
              crc);
    at += 46 + name_len + extra_len + comment_len;
  }
}

}  // namespace hftrain::io
