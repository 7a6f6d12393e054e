#include "hftrain/io/tfevents.h"

#include "hftrain/core/error.h"
#include "hftrain/io/crc32c.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace hftrain::io {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <typename T>
void put_fixed(std::string& out, T v) {  // little-endian, as protobuf's fixed32/fixed64
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_varint(out, (field << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_varint(e, (1 << 3) | 1);  // wall_time: double
  put_fixed(e, wall_time);
  if (step != 0) {
    put_varint(e, (2 << 3) | 0);  // step: int64
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

}  // namespace

EventWriter::EventWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now_seconds())) + "." + host + "." +
          std::to_string(::getpid()) + ".0";
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) fail_runtime("cannot create {}: {}", path_, std::strerror(errno));
  std::string e = event_header(now_seconds(), 0);
  put_bytes(e, 3, "brain.Event:2");
  write_event(e);
  flush();
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

void EventWriter::add_scalar(const std::string& tag, float value, int64_t step) {
  std::string v;
  put_bytes(v, 1, tag);
  put_varint(v, (2 << 3) | 5);  // simple_value: float
  put_fixed(v, value);
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_header(now_seconds(), step);
  put_bytes(e, 5, summary);
  write_event(e);
}

void EventWriter::write_event(const std::string& event) {
  std::string record;
  const uint64_t len = event.size();
  put_fixed(record, len);
  put_fixed(record, crc32c_masked(&len, sizeof len));
  record += event;
  put_fixed(record, crc32c_masked(event.data(), event.size()));
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size())
    fail_runtime("cannot write {}: {}", path_, std::strerror(errno));
}

void EventWriter::flush() { std::fflush(file_); }

}  // namespace hftrain::io
