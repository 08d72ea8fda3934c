"""TensorBoard scalar logging without the tensorboard package: TFRecord files of ``Event`` protobufs.

The format: each record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``
(little-endian); ``data`` is an ``Event`` (1: wall_time double, 2: step int64, 3: file_version string,
5: summary) whose ``Summary`` holds ``Value``s (1: tag string, 2: simple_value float). The first event
carries ``file_version = "brain.Event:2"``. TensorBoard reads any ``events.out.tfevents.*`` file in the log dir.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["EventWriter", "crc32c", "encode_scalar_event"]


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_scalar_event(step: int, wall_time: float, scalars: Mapping[str, float]) -> bytes:
    """An ``Event`` protobuf with one ``simple_value`` per tag."""
    values = b"".join(
        _field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(v)))
        for tag, v in scalars.items())
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + _field_bytes(5, values)


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data))


class EventWriter:
    """Appends scalar events to a new ``events.out.tfevents.*`` file in ``log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        directory = Path(log_dir)
        directory.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = directory / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self._file = self.path.open("ab")
        version = b"\x09" + struct.pack("<d", now) + _field_bytes(3, b"brain.Event:2")
        self._file.write(_record(version))

    def scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Write one event with every scalar (tags like 'cost/corner') at ``step``."""
        self._file.write(_record(encode_scalar_event(step, time.time(), scalars)))
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
