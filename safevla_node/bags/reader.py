"""Open any rosbag2 recording robustly, read-only, and say clearly what is wrong with it.

rosbags' ``AnyReader`` does the IO (sqlite3, MCAP, file- or message-level zstd; sqlite files are opened
``immutable``, so nothing is ever written to the input). This module adds what our tools need on top:

* one error type, ``BagError``, that names the file and the fix, for a missing path, a directory without
  ``metadata.yaml``, a truncated or corrupt storage file, an undecodable message or a missing topic;
* topic names normalised to absolute (``scan`` recorded by ``rosbag2_cpp::Writer`` becomes ``/scan``);
* types the typestore cannot decode (e.g. ``gazebo_msgs/msg/PerformanceMetrics`` in a sqlite3 bag without
  definitions) listed instead of crashing, and ``nav2_msgs/msg/Costmap`` decodable even from sqlite3;
* splits that a killed ``safevla record`` left unfinalised reported as warnings.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys.base import TypesysError

from safevla_node.bags.typestore import make_typestore

if sys.version_info >= (3, 14):
    from compression.zstd import ZstdError
else:  # rosbags depends on the backport before 3.14
    from backports.zstd import ZstdError
from safevla_node.errors import BagError

__all__ = ["PARTIAL_SPLIT_PREFIX", "BagMessage", "BagReader", "TopicInfo", "normalize_topic", "open_bag"]

_LOG = logging.getLogger(__name__)

#: Staging folders of splits still being written by ``safevla record`` (see ``writer.py``).
PARTIAL_SPLIT_PREFIX = ".partial_split_"

# What rosbags and the storage libraries raise on bad input; all become BagError at this boundary.
_READ_ERRORS = (AnyReaderError, ReaderError, sqlite3.Error, SerdeError, TypesysError, ZstdError, OSError,
                EOFError, AssertionError, ValueError, KeyError, IndexError)


def normalize_topic(name: str) -> str:
    """The absolute form of a topic name (``scan`` -> ``/scan``), as the ROS graph shows it."""
    return name if name.startswith("/") else f"/{name}"


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag.

    Attributes:
        name: absolute topic name.
        recorded_name: the name as written in the bag (may lack the leading slash).
        msgtype: ``pkg/msg/Type``.
        count: number of messages.
        qos: offered QoS profiles as recorded (empty when the bag recorded none).
        decodable: the typestore can deserialize this type.
    """

    name: str
    recorded_name: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...]
    decodable: bool


@dataclass(frozen=True)
class BagMessage:
    """One recorded message, still serialized.

    Attributes:
        topic: absolute topic name.
        msgtype: ``pkg/msg/Type``.
        time_ns: receive time recorded by the bag writer (ns since the epoch, or sim time if the recorder
            used sim time).
        raw: the CDR bytes as received.
    """

    topic: str
    msgtype: str
    time_ns: int
    raw: bytes


def _resolve_bag_dir(path: Path) -> Path:
    if not path.exists():
        raise BagError(f"bag not found: {str(path)!r}; pass the rosbag2 directory (the one holding metadata.yaml)")
    if path.is_file():
        if (path.parent / "metadata.yaml").is_file():
            return path.parent
        raise BagError(
            f"{str(path)!r} is a file without metadata.yaml beside it; pass the rosbag2 directory, or run "
            "`ros2 bag reindex` on its folder to rebuild the metadata"
        )
    if not (path / "metadata.yaml").is_file():
        partial = sorted(path.glob(f"{PARTIAL_SPLIT_PREFIX}*"))
        hint = (
            f"; it holds only unfinalised splits {[p.name for p in partial]} of a recording that was killed "
            "before its first split closed: nothing in it is recoverable"
            if partial
            else "; it is not a rosbag2 directory (or its recording never finished: try `ros2 bag reindex`)"
        )
        raise BagError(f"{str(path)!r} has no metadata.yaml{hint}")
    return path


class BagReader:
    """A rosbag2 recording opened for reading; use as a context manager (see ``open_bag``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = _resolve_bag_dir(Path(path))
        self.warnings: list[str] = []
        self._reader: AnyReader | None = None
        self._by_topic: dict[str, list[Connection]] = {}
        self._storage_id = ""
        self._topics: list[TopicInfo] = []

    # --- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Read the metadata and indexes.

        Raises:
            BagError: the metadata or a storage file is corrupt, truncated or missing.
        """
        metadata = self._metadata()
        types = [t["topic_metadata"]["type"] for t in metadata.get("topics_with_message_count", [])
                 if isinstance(t, dict) and isinstance(t.get("topic_metadata"), dict)]
        reader = AnyReader([self.path], default_typestore=make_typestore(types))
        try:
            reader.open()
        except FileNotFoundError as exc:
            raise BagError(f"{self.path}: a file listed in metadata.yaml is missing ({exc}); restore it or "
                           "remove it from relative_file_paths") from None
        except _READ_ERRORS as exc:
            files = sorted(p.name for p in self.path.iterdir() if p.is_file())
            raise BagError(f"cannot open bag {str(self.path)!r} (files {files}): {exc}; the metadata or a storage "
                           "file is corrupt or truncated: copy the bag again, or recover a cut-short MCAP with "
                           "`mcap recover FILE` and rebuild metadata.yaml with `ros2 bag reindex`") from None
        self._reader = reader
        self._storage_id = str(metadata["storage_identifier"])
        for conn in reader.connections:
            self._by_topic.setdefault(normalize_topic(conn.topic), []).append(conn)
        self._topics = self._collect_topics(reader)
        for partial in sorted(self.path.glob(f"{PARTIAL_SPLIT_PREFIX}*")):
            self.warnings.append(f"unfinalised split {partial.name} (recording was killed while writing it): "
                                 "its messages are not readable and are not counted")
        for info in self.topics:
            if not info.decodable and info.count:
                self.warnings.append(f"{info.name}: type {info.msgtype} is unknown to the typestore and the bag "
                                     "carries no definition for it; its messages are skipped")

    def _metadata(self) -> dict[str, Any]:
        """metadata.yaml's bagfile information ({} when unreadable: rosbags then raises the precise error)."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            text = (self.path / "metadata.yaml").read_text()
            info = yaml.load(text, Loader=loader)["rosbag2_bagfile_information"]  # noqa: S506 (a safe loader)
        except (OSError, yaml.YAMLError, TypeError, KeyError):
            return {}
        return info if isinstance(info, dict) else {}

    def close(self) -> None:
        """Release the files (idempotent)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def _open_reader(self) -> AnyReader:
        if self._reader is None:
            raise BagError(f"bag {str(self.path)!r} is not open; use `with open_bag(path) as bag:`")
        return self._reader

    # --- metadata ----------------------------------------------------------------------------------------

    @property
    def topics(self) -> list[TopicInfo]:
        """Every topic declared in the bag (including ones with no messages), sorted by name."""
        self._open_reader  # noqa: B018 (raises when closed)
        return list(self._topics)

    def _collect_topics(self, reader: AnyReader) -> list[TopicInfo]:
        infos = []
        for name, conns in sorted(self._by_topic.items()):
            msgtype = conns[0].msgtype
            qos: list[Qos] = []
            for conn in conns:
                qos.extend(getattr(conn.ext, "offered_qos_profiles", []))
            infos.append(TopicInfo(name=name, recorded_name=conns[0].topic, msgtype=msgtype,
                                   count=sum(c.msgcount for c in conns), qos=tuple(qos),
                                   decodable=msgtype in reader.typestore.fielddefs))
        return infos

    def topic(self, name: str) -> TopicInfo:
        """The topic called ``name`` (with or without leading slash).

        Raises:
            BagError: the bag has no such topic.
        """
        wanted = normalize_topic(name)
        for info in self.topics:
            if info.name == wanted:
                return info
        names = [t.name for t in self.topics]
        raise BagError(f"bag {str(self.path)!r} has no topic {wanted!r}; it has {names}")

    @property
    def start_ns(self) -> int:
        """Receive time of the first message (ns)."""
        return self._open_reader.start_time

    @property
    def end_ns(self) -> int:
        """Receive time of the last message (ns)."""
        reader = self._open_reader
        return max(reader.start_time, reader.end_time - 1) if reader.message_count else reader.start_time

    @property
    def duration_s(self) -> float:
        """Span between first and last receive time (s)."""
        return (self.end_ns - self.start_ns) * 1e-9

    @property
    def message_count(self) -> int:
        """Messages in the bag, per its indexes."""
        return self._open_reader.message_count

    @property
    def storage(self) -> str:
        """Storage plugin identifier (``sqlite3`` or ``mcap``)."""
        self._open_reader  # noqa: B018 (raises when closed)
        return self._storage_id

    @property
    def ros_distro(self) -> str:
        """Distro named in the metadata (empty for bags older than rosbag2 v6)."""
        return str(getattr(self._open_reader.readers[0], "ros_distro", "") or "")

    # --- messages ----------------------------------------------------------------------------------------

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages in receive-time order, optionally of some topics only.

        Raises:
            BagError: a topic is not in the bag, or the storage turned out corrupt while reading (the
                messages yielded before stay valid; the error says how many there were).
        """
        reader = self._open_reader
        if topics is None:
            conns: Sequence[Connection] = reader.connections
        else:
            wanted = [self.topic(name).name for name in topics]
            conns = [c for name in wanted for c in self._by_topic[name]]
        if not conns:
            return
        names = {c.id: normalize_topic(c.topic) for c in conns}
        count = 0
        try:
            for conn, time_ns, raw in reader.messages(connections=conns):
                count += 1
                yield BagMessage(names[conn.id], conn.msgtype, time_ns, bytes(raw))
        except _READ_ERRORS as exc:
            raise BagError(f"bag {str(self.path)!r} is corrupt or truncated after {count} messages: {exc}; "
                           "the messages before it were read") from None

    def decode(self, message: BagMessage) -> Any:
        """The rosbags message object for ``message``.

        Raises:
            BagError: the type is unknown or the bytes do not match it.
        """
        reader = self._open_reader
        if message.msgtype not in reader.typestore.fielddefs:
            raise BagError(f"{message.topic}: type {message.msgtype} is unknown to the typestore; register its "
                           ".msg definition (safevla_node.bags.typestore.EXTRA_MSG_DEFINITIONS) to decode it")
        try:
            return reader.typestore.deserialize_cdr(message.raw, message.msgtype)
        except _READ_ERRORS as exc:
            raise BagError(f"{self.path}: a {message.msgtype} message on {message.topic} at "
                           f"{message.time_ns} ns does not deserialize: {exc}") from None


def open_bag(path: str | Path) -> BagReader:
    """Open a rosbag2 directory (or a storage file inside one) for reading: ``with open_bag(p) as bag:``.

    Raises:
        BagError: the path is missing or not a rosbag2 directory (raised here), or corrupt (raised on
            entering the ``with`` block).
    """
    return BagReader(path)
