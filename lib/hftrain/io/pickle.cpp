#include "hftrain/io/pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "hftrain/core/error.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/zip_check.h"

namespace hftrain::io {

namespace {

// Python's pickler writes bytes that LibTorch 1.13's unpickler refuses, which this rewrites
// into what Python and LibTorch read alike:
// - a dict or list batch of exactly one item (a one-entry optimizer state, a one-element
//   list) as `key value SETITEM` / `value APPEND` (2.x reads them; 1.13 knows only the batched
//   forms): rewritten as `MARK k v SETITEMS` / `MARK v APPENDS`;
// - an integer as LONG1 with the fewest bytes (5 for 2^31..2^32-1, as a Mersenne Twister state
//   word), where LibTorch reads exactly 8: sign-extended to 8;
// - with drop_foreign, an object built from a global outside torch and collections (a NumPy
//   array in HF's rng_state.pth) that sits in a plain container: replaced by None, so the
//   rest of the file loads. Refused (nullopt) when a later memo reference would reach inside it.
// To find where a value begins, the walk tracks, for each stack slot, the offset of the first
// opcode that built it (stack effects as in CPython's pickletools). Returns nullopt when there
// is nothing to rewrite or an opcode is unknown; LibTorch then sees the original bytes and
// reports what it must.
std::optional<std::string> rewrite_for_libtorch(const char* p, size_t n, bool drop_foreign) {
  struct Slot {
    size_t start, end;  // the bytes that built it
    bool foreign;       // built from a global LibTorch does not know
  };
  std::vector<Slot> stack;
  std::vector<size_t> marks;  // stack depth at each MARK, and where the MARK was
  std::vector<size_t> mark_offsets;
  struct Edit {
    size_t at, erase;
    std::string insert;
  };
  std::vector<Edit> edits;
  std::vector<std::pair<size_t, size_t>> dropped;     // [start, end) replaced by None
  std::vector<std::pair<size_t, uint64_t>> puts, gets;  // (offset, memo index)
  bool memoize = false;  // protocol 4's MEMOIZE numbers memo entries by count: dropping shifts them

  auto le = [&](size_t from, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[from + i]);
    return v;
  };
  // Whether k values lie above the innermost MARK (a MARK starts a fresh stack, as in CPython).
  auto need = [&](size_t k) { return stack.size() >= k + (marks.empty() ? 0 : marks.back()); };
  // A foreign value put into a plain container becomes None there.
  auto consume = [&](size_t from) {
    for (size_t i = from; i < stack.size(); ++i)
      if (stack[i].foreign) dropped.emplace_back(stack[i].start, stack[i].end);
  };
  // Pops the values above the innermost MARK into a container; returns where the MARK was.
  auto pop_mark = [&]() -> std::optional<size_t> {
    if (marks.empty()) return std::nullopt;
    consume(marks.back());
    stack.resize(marks.back());
    size_t offset = mark_offsets.back();
    marks.pop_back();
    mark_offsets.pop_back();
    return offset;
  };
  size_t pos = 0;
  while (pos < n) {
    size_t here = pos;  // where this opcode starts
    unsigned char op = static_cast<unsigned char>(p[pos++]);
    // 1. Skip the argument.
    size_t arg = 0;     // fixed argument bytes
    int len_bytes = 0;  // or: a length of this many bytes, then that many bytes
    int lines = 0;      // or: this many newline-terminated lines
    // clang-format off
    switch (op) {
      // PROTO BININT1 BINPUT BINGET EXT1; BININT2 EXT2; BININT LONG_BINPUT LONG_BINGET EXT4
      case 0x80: case 'K': case 'q': case 'h': case 0x82: arg = 1; break;
      case 'M': case 0x83: arg = 2; break;
      case 'J': case 'r': case 'j': case 0x84: arg = 4; break;
      case 'G': arg = 8; break;  // BINFLOAT
      // LONG1 SHORT_BINSTRING SHORT_BINUNICODE SHORT_BINBYTES
      case 0x8a: case 'U': case 0x8c: case 'C': len_bytes = 1; break;
      // LONG4 BINSTRING BINUNICODE BINBYTES
      case 0x8b: case 'T': case 'X': case 'B': len_bytes = 4; break;
      // BINUNICODE8 BINBYTES8 BYTEARRAY8
      case 0x8d: case 0x8e: case 0x96: len_bytes = 8; break;
      // the text-protocol INT LONG FLOAT STRING UNICODE PERSID GET PUT; GLOBAL module\nname\n
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'g': case 'p':
        lines = 1; break;
      case 'c': lines = 2; break;
      default: break;
    }
    // clang-format on
    const size_t arg_at = pos + len_bytes;
    if (len_bytes) {
      if (pos + len_bytes > n) return std::nullopt;
      arg = le(pos, len_bytes);
      pos += len_bytes;
    }
    if (arg > n - pos) return std::nullopt;
    pos += arg;
    for (int i = 0; i < lines; ++i) {
      const void* nl = std::memchr(p + pos, '\n', n - pos);
      if (!nl) return std::nullopt;
      pos = static_cast<const char*>(nl) - p + 1;
    }

    // 2. Apply the stack effect.
    // clang-format off
    switch (op) {
      case 0x80:  // PROTO
        break;
      case 0x94:  // MEMOIZE
        memoize = true;
        break;
      case 'q': case 'r':  // BINPUT LONG_BINPUT
        puts.emplace_back(here, le(here + 1, op == 'q' ? 1 : 4));
        break;
      case 'h': case 'j':  // BINGET LONG_BINGET
        gets.emplace_back(here, le(here + 1, op == 'h' ? 1 : 4));
        stack.push_back({here, pos, false});
        break;
      case 'p':  // PUT n\n
        puts.emplace_back(here, std::strtoull(p + here + 1, nullptr, 10));
        break;
      case 'g':  // GET n\n
        gets.emplace_back(here, std::strtoull(p + here + 1, nullptr, 10));
        stack.push_back({here, pos, false});
        break;
      case 0x8a:  // LONG1
        if (arg == 0 || arg > 8) return std::nullopt;  // 0 or more than 64 bits: leave it to LibTorch
        if (arg < 8) {
          std::string wide = {static_cast<char>(0x8a), 8};
          const bool negative = static_cast<unsigned char>(p[arg_at + arg - 1]) & 0x80;
          wide.append(p + arg_at, arg);
          wide.append(8 - arg, negative ? '\xff' : '\0');
          edits.push_back({here, pos - here, std::move(wide)});
        }
        stack.push_back({here, pos, false});
        break;
      case 'c': {  // GLOBAL module\nname\n
        const std::string_view module(p + here + 1, std::strcspn(p + here + 1, "\n"));
        const bool known = module.substr(0, 5) == "torch" || module == "collections";
        stack.push_back({here, pos, drop_foreign && !known});
        break;
      }
      case 'N': case 0x88: case 0x89: case '}': case ']': case ')': case 0x8f:  // constants
      case 'K': case 'M': case 'J': case 'I': case 'L': case 'F': case 'G': case 0x8b:
      case 'U': case 'T': case 'S': case 'V': case 'X': case 0x8c: case 0x8d:
      case 'C': case 'B': case 0x8e: case 0x96:
      case 'P': case 0x82: case 0x83: case 0x84:
        stack.push_back({here, pos, false});
        break;
      case '(':  // MARK
        marks.push_back(stack.size());
        mark_offsets.push_back(here);
        break;
      case 't': case 'l': case 'd': case 0x91: {  // TUPLE LIST DICT FROZENSET
        auto start = pop_mark();
        if (!start) return std::nullopt;
        stack.push_back({*start, pos, false});
        break;
      }
      case 'u': case 'e': case 0x90:  // SETITEMS APPENDS ADDITEMS: into the container below the MARK
        if (!pop_mark() || stack.empty()) return std::nullopt;
        stack.back().end = pos;
        break;
      case '1':  // POP_MARK
        if (!pop_mark()) return std::nullopt;
        break;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1 TUPLE2 TUPLE3: it starts where its first item did
        const size_t k = op - 0x84;
        if (!need(k)) return std::nullopt;
        consume(stack.size() - k);
        const size_t start = stack[stack.size() - k].start;
        stack.resize(stack.size() - k);
        stack.push_back({start, pos, false});
        break;
      }
      case 'R': case 0x81: case 'b': {  // REDUCE NEWOBJ BUILD: the callable or object takes the result
        if (!need(2)) return std::nullopt;
        const bool foreign = stack.back().foreign;
        stack.pop_back();
        stack.back().foreign = stack.back().foreign || foreign;
        stack.back().end = pos;
        break;
      }
      case 0x93:  // STACK_GLOBAL: module and name strings
        if (!need(2)) return std::nullopt;
        stack.pop_back();
        stack.back().end = pos;
        break;
      case 'Q':  // BINPERSID: replaces the top
        if (!need(1)) return std::nullopt;
        stack.back().end = pos;
        break;
      case '0':  // POP
        if (!need(1)) return std::nullopt;
        stack.pop_back();
        break;
      case 's':  // SETITEM: dict key value
        if (!need(3)) return std::nullopt;
        consume(stack.size() - 2);
        edits.push_back({stack[stack.size() - 2].start, 0, "("});
        edits.push_back({here, 1, "u"});
        stack.resize(stack.size() - 2);
        stack.back().end = pos;
        break;
      case 'a':  // APPEND: list value
        if (!need(2)) return std::nullopt;
        consume(stack.size() - 1);
        edits.push_back({stack.back().start, 0, "("});
        edits.push_back({here, 1, "e"});
        stack.pop_back();
        stack.back().end = pos;
        break;
      case '.':  // STOP
        if (!stack.empty()) consume(stack.size() - 1);
        pos = n;
        break;
      default:  // FRAME, DUP, INST, OBJ, buffers, ...: not from torch.save; leave it to LibTorch
        return std::nullopt;
    }
    // clang-format on
  }

  // Outermost dropped spans only; a memo entry made inside one must not be read outside it.
  std::sort(dropped.begin(), dropped.end());
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& d : dropped)
    if (spans.empty() || d.first >= spans.back().second) spans.push_back(d);
  auto inside = [&](size_t at) {
    auto it = std::upper_bound(spans.begin(), spans.end(), std::make_pair(at, SIZE_MAX));
    return it != spans.begin() && at < std::prev(it)->second && at >= std::prev(it)->first;
  };
  for (const auto& [at, index] : gets) {
    if (inside(at)) continue;
    std::optional<size_t> put_at;
    for (const auto& [pa, pi] : puts)
      if (pi == index && pa < at) put_at = pa;
    if (put_at && inside(*put_at)) return std::nullopt;
  }
  if (!spans.empty() && memoize) return std::nullopt;
  for (const auto& [start, end] : spans) edits.push_back({start, end - start, "N"});
  if (edits.empty()) return std::nullopt;

  // Inserts (a MARK before a dropped value) before replacements at the same offset; the
  // edits inside a dropped span go with it.
  std::stable_sort(edits.begin(), edits.end(), [](const Edit& x, const Edit& y) {
    return x.at != y.at ? x.at < y.at : (x.erase == 0) > (y.erase == 0);
  });
  std::string out;
  out.reserve(n + edits.size() * 8);
  size_t cursor = 0;
  for (const Edit& e : edits) {
    if (e.at < cursor) continue;
    out.append(p + cursor, e.at - cursor);
    out += e.insert;
    cursor = e.at + e.erase;
  }
  out.append(p + cursor, n - cursor);
  return out;
}

// `v` with every list a plain list of IValues: jit's pickler writes lists of ints, floats,
// bools and tensors through torch.jit._pickle.build_*list, which weights_only refuses.
c10::IValue plain_containers(const c10::IValue& v) {
  if (v.isList()) {
    c10::impl::GenericList out(c10::AnyType::get());
    for (const c10::IValue& item : v.toListRef()) out.push_back(plain_containers(item));
    return out;
  }
  if (v.isGenericDict()) {
    const auto d = v.toGenericDict();
    c10::impl::GenericDict out(d.keyType(), c10::AnyType::get());
    for (const auto& kv : d) out.insert(kv.key(), plain_containers(kv.value()));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> items;
    for (const c10::IValue& item : v.toTupleRef().elements()) items.push_back(plain_containers(item));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  return v;
}

}  // namespace

// torch::jit::pickle_save's archive (data.pkl and data/<i> per storage, as torch.save lays
// it out), but pickled without TorchScript's type tags: jit's pickler wraps typed dicts and
// lists in torch.jit._pickle globals, which torch.load refuses by default since PyTorch 2.6
// (weights_only). Without them, and with typed lists made plain, every container is a plain
// dict, list or tuple.
void pickle_save_file(const std::string& path, const c10::IValue& value) {
  std::vector<char> pkl;
  torch::jit::Pickler pickler([&](const char* buf, size_t n) { pkl.insert(pkl.end(), buf, buf + n); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(plain_containers(value));
  pickler.stop();
  std::string bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
    bytes.append(static_cast<const char*>(buf), n);
    return n;
  });
  const std::vector<at::Tensor>& tensors = pickler.tensorData();
  for (size_t i = 0; i < tensors.size(); ++i) {
    torch::jit::WriteableTensorData d = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord("data/" + std::to_string(i), d.data(), d.sizeInBytes());
  }
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  writer.writeEndOfFile();
  write_file_atomic(path, bytes);
}

// What torch::jit::pickle_load does, with the opcode rewrite above between reading the
// archive's data.pkl and unpickling it, and every tensor loaded on the CPU (as
// torch.load(map_location="cpu")), so a checkpoint saved on a GPU loads anywhere.
c10::IValue pickle_load_file(const std::string& path, bool drop_foreign) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read {}: {}", path, std::strerror(errno));
  ::close(fd);
  zip_check(path);  // LibTorch's reader trusts the bytes; a flipped one would load as a wrong value
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    auto [pkl_ptr, pkl_size] = reader.getRecord("data.pkl");
    const char* pkl = static_cast<const char*>(pkl_ptr.get());
    std::optional<std::string> expanded = rewrite_for_libtorch(pkl, pkl_size, drop_foreign);
    std::string_view bytes =
        expanded ? std::string_view(*expanded) : std::string_view(pkl, pkl_size);
    size_t pos = 0;
    auto read = [&](char* buf, size_t want) {
      size_t k = std::min(want, bytes.size() - pos);
      std::memcpy(buf, bytes.data() + pos, k);
      pos += k;
      return k;
    };
    // torch.save names each storage record data/<key>, the key being in the pickle.
    auto read_record = [&](const std::string& key) {
      return std::get<0>(reader.getRecord("data/" + key));
    };
    torch::jit::Unpickler unpickler(read, /*type_resolver=*/nullptr, /*obj_loader=*/nullptr,
                                    read_record, at::Device(at::kCPU));
    unpickler.set_version(reader.version());
    return unpickler.parse_ivalue();
  } catch (const c10::Error& e) {
    // what() carries a C++ backtrace; the user gets the one-line reason.
    fail("{}: not a torch pickle that LibTorch can load: {}", path, e.msg());
  } catch (const std::exception& e) {
    fail("{}: not a torch pickle that LibTorch can load: {}", path, e.what());
  }
}

}  // namespace hftrain::io
