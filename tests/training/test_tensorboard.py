"""TensorBoard event files written without the tensorboard package: checksum, protobuf and record framing."""

from __future__ import annotations

import struct

from policies.training.tensorboard import EventWriter, crc32c, encode_scalar_event


def test_crc32c_matches_the_castagnoli_check_value():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_scalar_event_encodes_wall_time_step_and_tagged_values():
    data = encode_scalar_event(3, 1.5, {"a": 2.0})
    value = b"\x0a\x01a" + b"\x15" + struct.pack("<f", 2.0)
    assert data == b"\x09" + struct.pack("<d", 1.5) + b"\x10\x03" + b"\x2a" + bytes([len(value) + 2]) + b"\x0a" \
        + bytes([len(value)]) + value


def _records(raw: bytes) -> list[bytes]:
    records, i = [], 0
    while i < len(raw):
        (length,) = struct.unpack_from("<Q", raw, i)
        records.append(raw[i + 12:i + 12 + length])
        i += 12 + length + 4
    assert i == len(raw)
    return records


def test_event_file_starts_with_the_version_record_and_holds_one_record_per_call(tmp_path):
    writer = EventWriter(tmp_path)
    writer.scalars(1, {"cost/corner": 0.5, "lambda/total": 0.01})
    writer.scalars(2, {"cost/corner": 0.25})
    writer.close()
    assert writer.path.name.startswith("events.out.tfevents.")
    records = _records(writer.path.read_bytes())
    assert len(records) == 3
    assert b"brain.Event:2" in records[0]
    assert b"cost/corner" in records[1] and b"lambda/total" in records[1] and b"\x10\x02" in records[2]
