#include "hftrain/io/safetensors.h"

#include <ATen/Functions.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/io/atomic_file.h"

// Tensor bytes are copied as they lie on disk, and safetensors is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace hftrain::io {

namespace {

struct Dtype {
  const char* name;  // as written in the header
  at::ScalarType type;
  size_t itemsize;
};

// The dtypes torch and HF checkpoints use; the names are the reference implementation's.
constexpr Dtype kDtypes[] = {
    {"F64", at::kDouble, 8},    {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8},  {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},     {"I8", at::kChar, 1},   {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

std::vector<std::string> dtype_names() {
  std::vector<std::string> names;
  for (const Dtype& d : kDtypes) names.emplace_back(d.name);
  return names;
}

const Dtype* dtype_by_name(const std::string& name) {
  for (const Dtype& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const Dtype* dtype_by_type(at::ScalarType type) {
  for (const Dtype& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

// Same limit as the reference implementation (MAX_HEADER_SIZE): a corrupt length must
// not make us allocate gigabytes for a "header".
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Entry {
  std::string name;
  const Dtype* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // relative to the start of the data section
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
};

// A read-only view of the whole file; unmapped when it goes out of scope.
struct Mapping {
  const char* data = nullptr;
  size_t size = 0;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping() = default;
  ~Mapping() {
    if (data) ::munmap(const_cast<char*>(data), size);
  }
};

void map_file(const std::string& path, Mapping& m) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read {}: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string err = std::strerror(errno);
    ::close(fd);
    fail_runtime("cannot stat {}: {}", path, err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot read {}: is a directory", path);
  }
  m.size = static_cast<size_t>(st.st_size);
  if (m.size > 0) {
    void* p = ::mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string err = std::strerror(errno);
      ::close(fd);
      fail_runtime("cannot mmap {}: {}", path, err);
    }
    m.data = static_cast<const char*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
}

template <typename... Args>
[[noreturn]] void bad_header(const std::string& path, fmt::format_string<Args...> f,
                             Args&&... args) {
  fail("{}: invalid safetensors header: {}", path, fmt::format(f, std::forward<Args>(args)...));
}

// A JSON integer >= 0 (nlohmann stores those as unsigned) no larger than `limit`.
bool get_count(const nlohmann::json& j, uint64_t limit, uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<uint64_t>();
  return out <= limit;
}

// Validates everything the header claims against the data section's size, so that no
// later step reads outside the file or trusts a length it has not checked.
Header parse_header(const std::string& path, const char* text, size_t n, uint64_t data_size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, text + n);
  } catch (const nlohmann::json::exception& e) {
    bad_header(path, "not valid JSON ({})", e.what());
  }
  if (!j.is_object()) bad_header(path, "expected a JSON object, got {}", j.type_name());

  Header h;
  for (const auto& [name, value] : j.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) bad_header(path, "__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) bad_header(path, "__metadata__ \"{}\" is not a string", k);
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!value.is_object())
      bad_header(path, "tensor \"{}\": expected an object with dtype, shape and data_offsets",
                 name);
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!value.contains(key)) bad_header(path, "tensor \"{}\": missing \"{}\"", name, key);

    Entry e;
    e.name = name;
    const auto& dtype = value["dtype"];
    if (!dtype.is_string()) bad_header(path, "tensor \"{}\": dtype is not a string", name);
    e.dtype = dtype_by_name(dtype.get<std::string>());
    if (!e.dtype)
      bad_header(path, "tensor \"{}\": {}", name,
                 unknown_name_message("dtype", dtype.get<std::string>(), dtype_names()));

    const auto& shape = value["shape"];
    if (!shape.is_array()) bad_header(path, "tensor \"{}\": shape is not an array", name);
    uint64_t numel = 1;
    for (const auto& d : shape) {
      uint64_t dim = 0;
      if (!get_count(d, std::numeric_limits<int64_t>::max(), dim))
        bad_header(path, "tensor \"{}\": shape {} is not a list of non-negative integers", name,
                   shape.dump());
      if (__builtin_mul_overflow(numel, dim, &numel))
        bad_header(path, "tensor \"{}\": shape {} overflows", name, shape.dump());
      e.shape.push_back(static_cast<int64_t>(dim));
    }

    const auto& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 ||
        !get_count(offsets[0], std::numeric_limits<uint64_t>::max(), e.begin) ||
        !get_count(offsets[1], std::numeric_limits<uint64_t>::max(), e.end))
      bad_header(path,
                 "tensor \"{}\": data_offsets {} is not [begin, end] of non-negative integers",
                 name, offsets.dump());
    if (e.begin > e.end)
      bad_header(path, "tensor \"{}\": data_offsets {} has begin > end", name, offsets.dump());
    if (e.end > data_size)
      bad_header(path, "tensor \"{}\": data_offsets {} run past the data section of {} bytes", name,
                 offsets.dump(), data_size);
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(e.dtype->itemsize), &nbytes) ||
        nbytes != e.end - e.begin)
      bad_header(path,
                 "tensor \"{}\": shape {} of {} needs {} x {} bytes, but data_offsets {} hold {}",
                 name, shape.dump(), e.dtype->name, numel, e.dtype->itemsize, offsets.dump(),
                 e.end - e.begin);
    h.entries.push_back(std::move(e));
  }

  // No two tensors may share bytes. Empty tensors own no bytes and cannot overlap.
  std::vector<const Entry*> by_begin;
  for (const Entry& e : h.entries)
    if (e.end > e.begin) by_begin.push_back(&e);
  std::sort(by_begin.begin(), by_begin.end(),
            [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  const Entry* reach = nullptr;  // the tensor whose bytes end furthest so far
  for (const Entry* e : by_begin) {
    if (reach && e->begin < reach->end)
      bad_header(path, "tensors \"{}\" [{}, {}) and \"{}\" [{}, {}) overlap", reach->name,
                 reach->begin, reach->end, e->name, e->begin, e->end);
    if (!reach || e->end > reach->end) reach = e;
  }
  return h;
}

}  // namespace

SafetensorsFile safetensors_load(const std::string& path) {
  Mapping file;
  map_file(path, file);
  if (file.size < 8)
    bad_header(path, "file is {} bytes, too short for the 8-byte header length", file.size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file.data[i]);
  if (n > file.size - 8)
    bad_header(path, "header length {} runs past the end of the {}-byte file", n, file.size);
  if (n > kMaxHeaderBytes)
    bad_header(path, "header length {} exceeds the limit of {} bytes", n, kMaxHeaderBytes);
  const char* data = file.data + 8 + n;
  Header h = parse_header(path, file.data + 8, n, file.size - 8 - n);

  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    // A copy, so the tensor owns its memory and outlives the mapping.
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void safetensors_save(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    const Dtype* dtype;
    at::Tensor data;  // contiguous, CPU
  };
  std::vector<Item> items;
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail_runtime("{}: \"__metadata__\" cannot be a tensor name", path);
    if (!seen.insert(name).second) fail_runtime("{}: tensor name \"{}\" appears twice", path, name);
    if (!tensor.defined()) fail_runtime("{}: tensor \"{}\" is undefined", path, name);
    const Dtype* dtype = dtype_by_type(tensor.scalar_type());
    if (!dtype)
      fail_runtime(
          "{}: tensor \"{}\" has dtype {}, which safetensors_save does not write; known: {}", path,
          name, c10::toString(tensor.scalar_type()), join(dtype_names(), ", "));
    items.push_back({&name, dtype, tensor.detach().contiguous().cpu()});
  }
  // Widest dtype first, then by name, as the reference implementation lays data out: with
  // the header padded to 8 bytes every tensor then starts aligned to its item size.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.dtype->itemsize != b.dtype->itemsize) return a.dtype->itemsize > b.dtype->itemsize;
    return *a.name < *b.name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const Item& it : items) {
    uint64_t nbytes = it.data.nbytes();
    header[*it.name] = {{"dtype", it.dtype->name},
                        {"shape", it.data.sizes().vec()},
                        {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::vector<std::string_view> parts = {std::string_view(len, 8), text};
  for (const Item& it : items)
    if (it.data.nbytes() > 0)
      parts.emplace_back(static_cast<const char*>(it.data.data_ptr()), it.data.nbytes());
  write_file_atomic_parts(path, parts);
}

}  // namespace hftrain::io
