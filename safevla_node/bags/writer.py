"""Recorder core: write serialized messages into a rosbag2 that stays readable if the process dies.

rosbags' ``Writer`` writes one storage file and its metadata only on ``close()``: a killed process leaves
an unreadable file. So the recording is cut into splits (by size and by duration). Each split is written
by its own ``Writer`` into a hidden staging folder (``.partial_split_<n>/``); when it closes, its file is
moved into the bag directory and the bag's ``metadata.yaml`` is rewritten atomically (temp file, rename)
to list every closed split. At any instant the bag directory therefore holds a complete, readable bag
made of the closed splits; SIGKILL loses at most the split in progress (at most ``max_split_duration_s``
or ``max_split_bytes`` of data), which the reader reports as unfinalised. Memory stays bounded: MCAP
buffers at most one 1 MiB chunk and sqlite3 spills its transaction to disk.

Plain Python (no rclpy): the recorder node feeds it raw CDR bytes with their receive time.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.typesys.store import Typestore

from safevla_node.bags.reader import PARTIAL_SPLIT_PREFIX, normalize_topic
from safevla_node.bags.typestore import make_typestore, register_installed_type
from safevla_node.config import check_range, field
from safevla_node.errors import BagError, ConfigError

__all__ = ["COMPRESSION_MODES", "STORAGES", "BagRecorder", "RecordConfig"]

_LOG = logging.getLogger(__name__)

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: ``storage`` compresses MCAP chunks (readable by every MCAP tool); ``file``/``message`` are rosbag2's modes.
COMPRESSION_MODES = {
    "none": CompressionMode.NONE,
    "file": CompressionMode.FILE,
    "message": CompressionMode.MESSAGE,
    "storage": CompressionMode.STORAGE,
}
_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}


@dataclass(frozen=True)
class RecordConfig:
    """How ``safevla record`` writes a bag."""

    output: str = field("", "bag directory to create; must not exist yet")
    storage: str = field("mcap", "storage plugin: mcap or sqlite3")
    compression: str = field("none", "zstd compression: none, file, message, or storage (MCAP chunks only)")
    max_split_bytes: int = field(64 * 2**20, "close the split after about this many message bytes (0: no limit)")
    max_split_duration_s: float = field(30.0, "close the split after this much receive time (s; 0: no limit)")

    def __post_init__(self) -> None:
        if not self.output:
            raise ConfigError("output is empty; name the bag directory to create")
        if self.storage not in STORAGES:
            raise ConfigError(f"storage={self.storage!r} is not one of {sorted(STORAGES)}")
        if self.compression not in COMPRESSION_MODES:
            raise ConfigError(f"compression={self.compression!r} is not one of {sorted(COMPRESSION_MODES)}")
        if self.compression == "storage" and self.storage != "mcap":
            raise ConfigError("compression='storage' compresses MCAP chunks; with sqlite3 use 'message' or 'file'")
        check_range("max_split_bytes", self.max_split_bytes, 0)
        check_range("max_split_duration_s", self.max_split_duration_s, 0.0)


@dataclass
class _Topic:
    topic: str
    msgtype: str
    qos: tuple[Qos, ...]


def _merge_metadata(combined: dict[str, Any] | None, split: dict[str, Any], file_name: str) -> dict[str, Any]:
    """Fold one closed split's metadata into the bag's."""
    split["relative_file_paths"] = [file_name]
    for entry in split["files"]:
        entry["path"] = file_name
    if combined is None:
        return split
    def span(meta: dict[str, Any]) -> tuple[int, int]:
        first = meta["starting_time"]["nanoseconds_since_epoch"]
        return first, first + meta["duration"]["nanoseconds"]

    (a_start, a_end), (b_start, b_end) = span(combined), span(split)
    start, end = min(a_start, b_start), max(a_end, b_end)
    combined["starting_time"]["nanoseconds_since_epoch"] = start
    combined["duration"]["nanoseconds"] = end - start
    combined["message_count"] += split["message_count"]
    combined["relative_file_paths"].append(file_name)
    combined["files"].extend(split["files"])
    counts = {(t["topic_metadata"]["name"], t["topic_metadata"]["type"]): t
              for t in combined["topics_with_message_count"]}
    for topic in split["topics_with_message_count"]:
        key = (topic["topic_metadata"]["name"], topic["topic_metadata"]["type"])
        if key in counts:
            counts[key]["message_count"] += topic["message_count"]
        else:
            combined["topics_with_message_count"].append(topic)
    return combined


class BagRecorder:
    """Writes raw messages into a split rosbag2 directory; use as a context manager.

    ``add_topic`` declares a topic (its definition comes from the typestore or the installed ``.msg``
    files), ``write`` stores one message, ``close`` finalises the last split. Not thread-safe: call it from
    one thread (the recorder node's executor).
    """

    def __init__(self, config: RecordConfig, typestore: Typestore | None = None) -> None:
        self.config = config
        self.path = Path(config.output)
        self.typestore = typestore or make_typestore()
        self.topics: dict[str, _Topic] = {}
        self.splits: list[Path] = []
        self.message_count = 0
        self._metadata: dict[str, Any] | None = None
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}
        self._split_bytes = 0
        self._split_start_ns: int | None = None
        self._split_messages = 0
        self._open = False

    # --- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the bag directory.

        Raises:
            BagError: it exists already (rosbag2 never appends to a bag).
        """
        if self.path.exists():
            raise BagError(f"{str(self.path)!r} exists already; choose a new output directory (bags are never "
                           "appended to or overwritten)")
        self.path.mkdir(parents=True)
        self._open = True

    def close(self) -> None:
        """Finalise the split in progress and the bag's metadata (idempotent)."""
        if not self._open:
            return
        if self._writer is not None and (self._split_messages or not self.splits):
            self._close_split()
        elif self._writer is not None:
            self._abort_split()
        if not self.splits and self._writer is None:
            self._start_split()  # an empty recording is still a valid (empty) bag
            self._close_split()
        self._open = False
        _LOG.info("bag %s closed: %d messages in %d split(s)", self.path, self.message_count, len(self.splits))

    def __enter__(self) -> BagRecorder:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- topics and messages -----------------------------------------------------------------------------

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> bool:
        """Declare a topic; returns False (and logs why) when no definition of ``msgtype`` can be found.

        Raises:
            BagError: the topic was already declared with another type.
        """
        name = normalize_topic(topic)
        if name in self.topics:
            if self.topics[name].msgtype != msgtype:
                raise BagError(f"{name} is recorded as {self.topics[name].msgtype}, now offered as {msgtype}; "
                               "record each type under its own topic")
            return True
        if msgtype not in self.typestore.fielddefs and not register_installed_type(self.typestore, msgtype):
            _LOG.warning("not recording %s: no definition of %s in the typestore or under share/*/msg; "
                         "install its message package or add it to EXTRA_MSG_DEFINITIONS", name, msgtype)
            return False
        self.topics[name] = _Topic(name, msgtype, tuple(qos))
        if self._writer is not None:
            self._add_connection(self.topics[name])
        return True

    def write(self, topic: str, time_ns: int, raw: bytes) -> None:
        """Store one serialized message received at ``time_ns``.

        Raises:
            BagError: the bag is not open or the topic was not declared.
        """
        if not self._open:
            raise BagError(f"bag {str(self.path)!r} is not open for writing; use `with BagRecorder(...)`")
        name = normalize_topic(topic)
        if name not in self.topics:
            raise BagError(f"{name} was not declared; call add_topic({name!r}, msgtype) before writing")
        if self._writer is not None and self._split_is_full(time_ns):
            self._close_split()
        if self._writer is None:
            self._start_split()
        assert self._writer is not None
        if self._split_start_ns is None:
            self._split_start_ns = time_ns
        self._writer.write(self._connections[name], time_ns, raw)
        self._split_bytes += len(raw)
        self._split_messages += 1
        self.message_count += 1

    # --- splits ------------------------------------------------------------------------------------------

    def _split_is_full(self, time_ns: int) -> bool:
        cfg = self.config
        too_big = cfg.max_split_bytes > 0 and self._split_bytes >= cfg.max_split_bytes
        too_long = (cfg.max_split_duration_s > 0 and self._split_start_ns is not None
                    and (time_ns - self._split_start_ns) * 1e-9 >= cfg.max_split_duration_s)
        return too_big or too_long

    def _staging(self) -> Path:
        return self.path / f"{PARTIAL_SPLIT_PREFIX}{len(self.splits)}"

    def _start_split(self) -> None:
        writer = Writer(self._staging(), version=9, storage_plugin=STORAGES[self.config.storage])
        mode = COMPRESSION_MODES[self.config.compression]
        if mode is not CompressionMode.NONE:
            writer.set_compression(mode, CompressionFormat.ZSTD)
        writer.open()
        self._writer = writer
        self._connections = {}
        for topic in self.topics.values():
            self._add_connection(topic)
        self._split_bytes = 0
        self._split_start_ns = None
        self._split_messages = 0

    def _add_connection(self, topic: _Topic) -> None:
        assert self._writer is not None
        try:
            self._connections[topic.topic] = self._writer.add_connection(
                topic.topic, topic.msgtype, typestore=self.typestore, offered_qos_profiles=list(topic.qos))
        except WriterError as exc:
            raise BagError(f"cannot add {topic.topic} ({topic.msgtype}) to {self.path}: {exc}") from None

    def _close_split(self) -> None:
        assert self._writer is not None
        staging = self._staging()
        self._writer.close()
        self._writer = None
        split_meta = yaml.safe_load((staging / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        (stored,) = split_meta["relative_file_paths"]
        final = self.path / f"{self.path.name}_{len(self.splits)}{_SUFFIX[self.config.storage]}"
        final = final.with_name(final.name + stored.removeprefix(staging.name + _SUFFIX[self.config.storage]))
        (staging / stored).replace(final)
        shutil.rmtree(staging)
        self._metadata = _merge_metadata(self._metadata, split_meta, final.name)
        self._metadata["ros_distro"] = "safevla-record (rosbags)"
        tmp = self.path / "metadata.yaml.tmp"
        tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": self._metadata}, sort_keys=False))
        tmp.replace(self.path / "metadata.yaml")
        self.splits.append(final)
        _LOG.info("closed split %s (%d messages)", final.name, self._split_messages)

    def _abort_split(self) -> None:
        assert self._writer is not None
        self._writer.abort()
        self._writer = None
        shutil.rmtree(self._staging(), ignore_errors=True)
