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

namespace hftrain::io {

namespace {

// Python's pickler writes a dict or list in batches of up to 1000 items with MARK ...
// SETITEMS / APPENDS, but a batch of exactly one (a one-entry dict such as an optimizer
// state for a single parameter, a one-element list) as `key value SETITEM` / `value APPEND`.
// LibTorch 1.13's unpickler knows only the batched forms (2.x added the single ones), so
// we rewrite `k v SETITEM` as `MARK k v SETITEMS` and `v APPEND` as `MARK v APPENDS`,
// which Python and LibTorch read alike. To find where `k` or `v` begins, the walk tracks,
// for each stack slot, the offset of the first opcode that built it (opcode stack effects
// as in CPython's pickletools). Returns nullopt when there is nothing to rewrite or an
// opcode is unknown; LibTorch then sees the original bytes and reports what it must.
std::optional<std::string> expand_single_item_ops(const char* p, size_t n) {
  std::vector<size_t> stack;  // per stack slot: byte offset where its value starts
  struct Mark {
    size_t depth, offset;
  };
  std::vector<Mark> marks;
  std::vector<size_t> mark_at;                      // offsets to insert a MARK before
  std::vector<std::pair<size_t, char>> new_opcode;  // SETITEM -> SETITEMS, APPEND -> APPENDS

  auto le = [&](size_t from, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[from + i]);
    return v;
  };
  // Whether k values lie above the innermost MARK (a MARK starts a fresh stack, as in CPython).
  auto need = [&](size_t k) {
    return stack.size() >= k + (marks.empty() ? 0 : marks.back().depth);
  };
  // Drops the values above the innermost MARK; returns where that MARK was.
  auto pop_mark = [&]() -> std::optional<size_t> {
    if (marks.empty()) return std::nullopt;
    stack.resize(marks.back().depth);
    size_t offset = marks.back().offset;
    marks.pop_back();
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
      case 0x80: case 'q': case 'r': case 'p': case 0x94:  // PROTO, memo writes: no effect
        break;
      case 'N': case 0x88: case 0x89: case '}': case ']': case ')': case 0x8f:  // constants
      case 'K': case 'M': case 'J': case 'I': case 'L': case 'F': case 'G': case 0x8a: case 0x8b:
      case 'U': case 'T': case 'S': case 'V': case 'X': case 0x8c: case 0x8d:
      case 'C': case 'B': case 0x8e: case 0x96:
      case 'c': case 'g': case 'h': case 'j': case 'P': case 0x82: case 0x83: case 0x84:
        stack.push_back(here);
        break;
      case '(':  // MARK
        marks.push_back({stack.size(), here});
        break;
      case 't': case 'l': case 'd': case 0x91: {  // TUPLE LIST DICT FROZENSET
        auto start = pop_mark();
        if (!start) return std::nullopt;
        stack.push_back(*start);
        break;
      }
      case 'u': case 'e': case 0x90: case '1':  // SETITEMS APPENDS ADDITEMS POP_MARK
        if (!pop_mark()) return std::nullopt;
        break;
      case 0x85:  // TUPLE1
        if (!need(1)) return std::nullopt;
        break;
      case 0x86: case 0x87: {  // TUPLE2 TUPLE3: the tuple starts where its first item did
        size_t k = op == 0x86 ? 2 : 3;
        if (!need(k)) return std::nullopt;
        stack.resize(stack.size() - (k - 1));
        break;
      }
      case 'R': case 0x81: case 0x93: case 'b':  // REDUCE NEWOBJ STACK_GLOBAL BUILD
        if (!need(2)) return std::nullopt;
        stack.pop_back();
        break;
      case 'Q': case '0':  // BINPERSID (replaces the top), POP
        if (!need(1)) return std::nullopt;
        if (op == '0') stack.pop_back();
        break;
      case 's':  // SETITEM: dict key value
        if (!need(3)) return std::nullopt;
        mark_at.push_back(stack[stack.size() - 2]);
        new_opcode.emplace_back(here, 'u');
        stack.resize(stack.size() - 2);
        break;
      case 'a':  // APPEND: list value
        if (!need(2)) return std::nullopt;
        mark_at.push_back(stack.back());
        new_opcode.emplace_back(here, 'e');
        stack.pop_back();
        break;
      case '.':  // STOP
        pos = n;
        break;
      default:  // FRAME, DUP, INST, OBJ, buffers, ...: not from torch.save; leave it to LibTorch
        return std::nullopt;
    }
    // clang-format on
  }
  if (new_opcode.empty()) return std::nullopt;

  std::sort(mark_at.begin(), mark_at.end());
  std::string out;
  out.reserve(n + mark_at.size());
  size_t m = 0, r = 0;  // new_opcode is already in file order
  for (size_t i = 0; i < n; ++i) {
    for (; m < mark_at.size() && mark_at[m] == i; ++m) out += '(';
    if (r < new_opcode.size() && new_opcode[r].first == i) {
      out += new_opcode[r++].second;
    } else {
      out += p[i];
    }
  }
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
c10::IValue pickle_load_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read {}: {}", path, std::strerror(errno));
  ::close(fd);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    auto [pkl_ptr, pkl_size] = reader.getRecord("data.pkl");
    const char* pkl = static_cast<const char*>(pkl_ptr.get());
    std::optional<std::string> expanded = expand_single_item_ops(pkl, pkl_size);
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
