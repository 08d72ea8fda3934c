"""Replay timing core (no rclpy): which message goes out when, mirroring ``ros2 bag play``.

``ReplayPlan`` turns a bag into a stream of ``ReplayEvent`` s, each with the wall-clock offset (s after
playback start) at which it must be published: bag receive-time offsets divided by ``rate``, after
``--start-offset``, for the chosen ``--topics``, with ``--remap`` applied, repeated under ``--loop``, and
interleaved with ``/clock`` ticks (``--clock HZ``) whose value is the bag's receive time at that instant,
for nodes running with ``use_sim_time``. ``Pacer`` waits for each deadline: it sleeps until about 1 ms
before it, then spin-waits, because ``time.sleep`` alone overshoots by the scheduler's wake-up latency.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import count

from rosbags.typesys.store import Typestore

from safevla_node.bags.reader import BagReader, normalize_topic
from safevla_node.bags.typestore import make_typestore
from safevla_node.config import check_range, field
from safevla_node.errors import BagError, ConfigError

__all__ = ["CLOCK_TOPIC", "Pacer", "ReplayConfig", "ReplayEvent", "ReplayPlan", "parse_remaps"]

_LOG = logging.getLogger(__name__)

CLOCK_TOPIC = "/clock"
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"


def parse_remaps(specs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["from:=to", ...]`` (``ros2 bag play --remap`` syntax) as absolute-name pairs.

    Raises:
        ConfigError: an entry is not ``from:=to``.
    """
    remaps: dict[str, str] = {}
    for spec in specs:
        src, sep, dst = spec.partition(":=")
        if not sep or not src or not dst:
            raise ConfigError(f"remap {spec!r} is not of the form from:=to (e.g. /cmd_vel:=/replayed/cmd_vel)")
        remaps[normalize_topic(src)] = normalize_topic(dst)
    return remaps


@dataclass(frozen=True)
class ReplayConfig:
    """Playback options (``ros2 bag play`` names)."""

    rate: float = field(1.0, "playback speed factor (2.0: twice as fast)")
    loop: bool = field(False, "start over at the end, forever")
    clock_hz: float = field(0.0, "publish /clock at this wall frequency from the bag's receive times (0: off)")
    topics: tuple[str, ...] = field((), "topics to play (empty: all)")
    remap: tuple[str, ...] = field((), "topic remappings from:=to")
    start_offset_s: float = field(0.0, "skip this much bag time from the start (s)")

    def __post_init__(self) -> None:
        check_range("rate", self.rate, 1e-6)
        check_range("clock_hz", self.clock_hz, 0.0, 10_000.0)
        check_range("start_offset_s", self.start_offset_s, 0.0)
        parse_remaps(self.remap)


@dataclass(frozen=True)
class ReplayEvent:
    """One publication.

    Attributes:
        offset_s: wall time after playback start at which to publish (s).
        topic: topic to publish on (after remapping).
        msgtype: ``pkg/msg/Type``.
        raw: CDR bytes.
        bag_time_ns: the bag receive time this event stands for.
    """

    offset_s: float
    topic: str
    msgtype: str
    raw: bytes
    bag_time_ns: int


class ReplayPlan:
    """The publication schedule of a bag under a ``ReplayConfig``; ``events()`` can be iterated again."""

    def __init__(self, bag: BagReader, config: ReplayConfig, typestore: Typestore | None = None) -> None:
        self.bag = bag
        self.config = config
        self._typestore = typestore or make_typestore()
        remaps = parse_remaps(config.remap)
        selected = [bag.topic(t) for t in config.topics] if config.topics else bag.topics
        if config.clock_hz > 0 and any(t.name == CLOCK_TOPIC for t in selected):
            _LOG.warning("--clock: the recorded %s is not played (it would fight the generated clock)",
                         CLOCK_TOPIC)
            selected = [t for t in selected if t.name != CLOCK_TOPIC]
        #: source topic -> published topic, for the topics that will be played.
        self.topic_map: dict[str, str] = {t.name: remaps.get(t.name, t.name) for t in selected}
        #: published topic -> msgtype.
        self.types: dict[str, str] = {remaps.get(t.name, t.name): t.msgtype for t in selected}
        #: published topic -> recorded QoS profiles.
        self.qos = {remaps.get(t.name, t.name): t.qos for t in selected}
        self.start_ns = bag.start_ns + round(config.start_offset_s * 1e9)
        if self.start_ns > bag.end_ns:
            raise BagError(f"--start-offset {config.start_offset_s} s is past the end of {bag.path} "
                           f"({bag.duration_s:.2f} s long); choose a smaller offset")
        self.loop_span_ns = bag.end_ns - self.start_ns

    def _messages(self, loop_index: int) -> Iterator[ReplayEvent]:
        rate = self.config.rate
        base_ns = loop_index * (self.loop_span_ns + 1)
        for msg in self.bag.messages(self.topic_map):
            if msg.time_ns < self.start_ns:
                continue
            offset = (msg.time_ns - self.start_ns + base_ns) * 1e-9 / rate
            yield ReplayEvent(offset, self.topic_map[msg.topic], msg.msgtype, msg.raw, msg.time_ns)

    def _clock_ticks(self, horizon_s: float | None) -> Iterator[ReplayEvent]:
        period = 1.0 / self.config.clock_hz
        clock_cls = self._typestore.types[CLOCK_TYPE]
        time_cls = self._typestore.types["builtin_interfaces/msg/Time"]
        span_s = (self.loop_span_ns + 1) * 1e-9 / self.config.rate
        for tick in count():
            offset = tick * period
            if horizon_s is not None and offset > horizon_s:
                return
            into_bag_s = (offset % span_s if self.config.loop else offset) * self.config.rate
            bag_ns = self.start_ns + round(into_bag_s * 1e9)
            sec, nsec = divmod(bag_ns, 1_000_000_000)
            raw = bytes(self._typestore.serialize_cdr(clock_cls(time_cls(sec, nsec)), CLOCK_TYPE))
            yield ReplayEvent(offset, CLOCK_TOPIC, CLOCK_TYPE, raw, bag_ns)

    def events(self) -> Iterator[ReplayEvent]:
        """Every publication in deadline order (endless under ``loop``)."""
        def all_messages() -> Iterator[ReplayEvent]:
            loops = count() if self.config.loop else iter((0,))
            for index in loops:
                yield from self._messages(index)

        streams: list[Iterator[ReplayEvent]] = [all_messages()]
        if self.config.clock_hz > 0:
            horizon = None if self.config.loop else self.loop_span_ns * 1e-9 / self.config.rate
            streams.append(self._clock_ticks(horizon))
        yield from heapq.merge(*streams, key=lambda e: e.offset_s)

    def publishers(self) -> Mapping[str, str]:
        """Published topic -> msgtype, including /clock when it is generated."""
        types = dict(self.types)
        if self.config.clock_hz > 0:
            types[CLOCK_TOPIC] = CLOCK_TYPE
        return types


class Pacer:
    """Waits for wall-clock deadlines relative to ``start()``: sleep, then spin for the last ``spin_s``.

    ``clock`` and ``sleep`` are injectable so the policy can be tested without waiting.
    """

    def __init__(self, spin_s: float = 1e-3, poll_s: float = 0.05,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if spin_s < 0:
            raise ConfigError(f"spin_s={spin_s!r} must be >= 0")
        self.spin_s = spin_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()

    def start(self) -> None:
        """Offsets count from now."""
        self._t0 = self._clock()

    @property
    def started_at(self) -> float:
        """The clock reading of the last ``start()``: deadlines are this plus their offset."""
        return self._t0

    def wait_until(self, offset_s: float, cancelled: Callable[[], bool] = lambda: False) -> float | None:
        """Return at ``offset_s`` after ``start()`` (at once if that is past).

        Returns the lateness (s), or None when ``cancelled()`` turned true while sleeping (it is polled at
        least every ``poll_s``, so a long gap in the bag never delays a shutdown).
        """
        deadline = self._t0 + offset_s
        remaining = deadline - self._clock()
        while remaining > self.spin_s:
            if cancelled():
                return None
            self._sleep(min(remaining - self.spin_s, self.poll_s))
            remaining = deadline - self._clock()
        now = self._clock()
        while now < deadline:
            now = self._clock()
        return now - deadline
