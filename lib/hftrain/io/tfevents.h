// TensorBoard event files: TFRecords (u64 length, masked CRC-32C of the length, the bytes,
// masked CRC-32C of the bytes) holding tensorflow.Event protos, written by hand: an Event
// {wall_time = 1, step = 2, file_version = 3, summary = 5}, a Summary {value = 1}, a
// Summary.Value {tag = 1, simple_value = 2}.
#pragma once

#include <cstdio>
#include <string>

namespace hftrain::io {

class EventWriter {
 public:
  // Creates <dir>/events.out.tfevents.<seconds>.<host>.<pid>.0 and writes the file_version event.
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void add_scalar(const std::string& tag, float value, int64_t step);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace hftrain::io
