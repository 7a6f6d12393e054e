"""Decodes a TensorBoard event file with the real protobuf library, independently of hftrain.

usage: decode_tfevents.py FILE
Checks every record's length and data CRC (CRC-32C, masked as TensorFlow masks it, computed
here bit by bit), decodes each record as a tensorflow.Event, and prints one JSON line per
scalar: {"step", "tag", "value", "wall_time"}; the first event must be the file_version.
"""
import json
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# tensorflow/core/util/event.proto and framework/summary.proto, the fields TensorBoard reads.
f = descriptor_pb2.FileDescriptorProto(name="event.proto", package="tensorflow", syntax="proto3")
v = f.message_type.add(name="SummaryValue")
v.field.add(name="tag", number=1, type=9, label=1)
v.field.add(name="simple_value", number=2, type=2, label=1)
s = f.message_type.add(name="Summary")
s.field.add(name="value", number=1, type=11, label=3, type_name=".tensorflow.SummaryValue")
e = f.message_type.add(name="Event")
e.field.add(name="wall_time", number=1, type=1, label=1)
e.field.add(name="step", number=2, type=3, label=1)
e.field.add(name="file_version", number=3, type=9, label=1)
e.field.add(name="summary", number=5, type=11, label=1, type_name=".tensorflow.Summary")
pool = descriptor_pool.DescriptorPool()
pool.Add(f)
Event = message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tensorflow.Event"))

data = open(sys.argv[1], "rb").read()
pos, first = 0, True
assert data, "empty file"
while pos < len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    (len_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
    assert len_crc == masked(header), f"length CRC mismatch at {pos}"
    body = data[pos + 12:pos + 12 + length]
    assert len(body) == length, f"truncated record at {pos}"
    (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
    assert body_crc == masked(body), f"data CRC mismatch at {pos}"
    pos += 16 + length
    ev = Event()
    ev.ParseFromString(body)
    if first:
        assert ev.file_version == "brain.Event:2", ev.file_version
        first = False
        continue
    for val in ev.summary.value:
        print(json.dumps({"step": ev.step, "tag": val.tag, "value": val.simple_value, "wall_time": ev.wall_time}))
