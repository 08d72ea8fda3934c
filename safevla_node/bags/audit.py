"""Audit a bag: run the safety monitor core over its messages, in-process, without DDS.

The bag's messages are fed to ``SafetyMonitor`` in receive-time order, with the bag's receive time as the
injected clock, and the monitor ticks at its control rate in between, exactly as the node would have done
live. Everything is deterministic (no wall clock, no threads), so the same bag always gives the same
report, and it runs much faster than real time.

What a bag has decides what is audited. Inputs are found by role (scan, odometry, joint states, base
command, costmap, clock, cameras); a robot-centred ``nav2_msgs/Costmap`` stands in for the scan (its
lethal cells become obstacle points). Required sources the bag does not record at all are not required in
the audit (a live monitor with the same config would stop for the whole run, which says nothing about the
recording), except the scan: without an obstacle source the monitor cannot judge motion, so a missing or
empty scan stays required and every tick is a STOP, and the report says so. Without odometry the robot is
held at the origin and the obstacle memory keeps only the latest scans (its decay is cut to 1.5 scan
periods), since scans cannot be placed in a world frame.

Policy hook: pass ``policy`` (any object with ``propose(now, latest)``, see ``AuditPolicy``) to replay a
policy's discrete proposals through the monitor too; the VLA runtime (``policies/``) is written
elsewhere and plugs in here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from safevla_node.bags.adapters import costmap_to_scan, stamp_s
from safevla_node.bags.audit_report import AuditReport, Interval, SourceHealth
from safevla_node.bags.reader import BagMessage, BagReader, open_bag
from safevla_node.config import check_range, field, from_mapping, load_yaml
from safevla_node.errors import BagError, MessageError
from safevla_node.msg_decode import joint_state_from_msg, odom_from_msg, scan_from_msg, twist_from_msg
from safevla_node.safety.monitor import MonitorConfig, SafetyMonitor
from safevla_node.safety.monitor_types import Source
from safevla_node.safety.types import Category, DiscreteCommand, VerdictKind

__all__ = ["AuditConfig", "AuditPolicy", "load_monitor_config", "run_audit"]

_LOG = logging.getLogger(__name__)

#: Sensor roles and the monitor source each feeds.
_SOURCE_OF_ROLE = {"scan": Source.SCAN, "costmap": Source.SCAN, "odom": Source.ODOM,
                   "joint_states": Source.JOINT_STATES}


class AuditPolicy(Protocol):
    """What the audit needs from a policy: a discrete proposal (or None) from the latest inputs.

    ``latest`` maps each audited topic to its latest decoded message (rosbags objects, camera images
    included when the bag has them). Called at ``AuditConfig.policy_rate_hz``.
    """

    def propose(self, now: float, latest: Mapping[str, Any]) -> DiscreteCommand | None:
        """The action to propose at ``now`` (s since the bag's start)."""


@dataclass(frozen=True)
class AuditConfig:
    """Which topics play which role, and how the report is built."""

    command_topics: tuple[str, ...] = field(("/cmd_vel_in", "/cmd_vel", "/cmd_vel_smoothed"),
                                            "base command topics to judge; the first one in the bag is used")
    scan_topic: str = field("/scan", "laser scan topic")
    costmap_topics: tuple[str, ...] = field(("/local_costmap/costmap",),
                                            "robot-centred nav2 costmaps: the obstacle source without a scan")
    odom_topic: str = field("/odom", "odometry topic")
    joint_states_topic: str = field("/joint_states", "joint states topic")
    clock_topic: str = field("/clock", "simulation clock topic")
    camera_topics: tuple[str, ...] = field(
        ("/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw",
         "/gripper_camera/color/image_rect_raw", "/navigation_camera/image_raw"), "camera topics the policy needs")
    gap_factor: float = field(3.0, "an inter-arrival gap longer than this many median periods is reported")
    policy_rate_hz: float = field(3.0, "how often the policy hook is asked for a proposal (Hz)")

    def __post_init__(self) -> None:
        check_range("gap_factor", self.gap_factor, 1.0)
        check_range("policy_rate_hz", self.policy_rate_hz, 0.01, 100.0)


@dataclass
class _Inputs:
    """Role -> topic for what the bag has, and what it lacks."""

    topics: dict[str, str]
    lacks: list[str]
    notes: list[str]


def _find_inputs(bag: BagReader, config: AuditConfig) -> _Inputs:
    present = {t.name: t for t in bag.topics}
    topics: dict[str, str] = {}
    lacks: list[str] = []
    notes: list[str] = []

    def take(role: str, candidates: tuple[str, ...]) -> None:
        for name in candidates:
            info = present.get(name)
            if info is None:
                continue
            if not info.decodable:
                notes.append(f"{name} ({info.msgtype}) cannot be decoded: its definition is unknown")
                continue
            if info.count == 0:
                lacks.append(f"{role} missing: {name} is declared but has no messages")
                return
            topics[role] = name
            return
        lacks.append(f"{role} missing: none of {list(candidates)} in the bag")

    take("command", config.command_topics)
    take("scan", (config.scan_topic,))
    if "scan" not in topics:
        costmaps = [c for c in config.costmap_topics if c in present and present[c].count]
        if costmaps:
            topics["costmap"] = costmaps[0]
            lacks[:] = [entry for entry in lacks if not entry.startswith("scan missing")]
            notes.append(f"no laser scan: the lethal cells of {costmaps[0]} are the obstacle source")
    take("odom", (config.odom_topic,))
    take("joint_states", (config.joint_states_topic,))
    if config.clock_topic in present and present[config.clock_topic].count:
        topics["clock"] = config.clock_topic
    cameras = [c for c in config.camera_topics if c in present]
    if not cameras:
        lacks.append("cameras missing: the policy cannot be audited on this bag (no images)")
    return _Inputs(topics, lacks, notes)


def _audit_monitor_config(base: MonitorConfig, inputs: _Inputs,
                          scan_period: float | None) -> tuple[MonitorConfig, list[str]]:
    """The monitor config for this bag: required sources it does not record are dropped, except scan."""
    notes = []
    have = {_SOURCE_OF_ROLE[r].value for r in inputs.topics if r in _SOURCE_OF_ROLE}
    required = tuple(s for s in base.required_sources if s == Source.SCAN.value or s in have)
    for dropped in sorted(set(base.required_sources) - set(required)):
        notes.append(f"required source {dropped} is not in the bag: not required in this audit (a live monitor "
                     "with this config would STOP for the whole run)")
    config = replace(base, required_sources=required)
    if "odom" not in inputs.topics and scan_period:
        decay = max(1.5 * scan_period, 1e-3)
        config = replace(config, obstacle_memory=replace(base.obstacle_memory, decay_s=decay))
        notes.append(f"no odometry: the robot is held at the origin and the obstacle memory keeps scans for "
                     f"{decay:.2f} s only (1.5 scan periods)")
    return config, notes


@dataclass
class _Timeline:
    """Per-tick samples, turned into intervals and statistics at the end."""

    times: list[float]
    kinds: list[int]
    risks: dict[Category, list[float]]
    commands: list[float]
    ages: dict[Source, list[float]]
    intervals: list[Interval]

    def add(self, now: float, kind: VerdictKind, category: Category | None, reason: str,
            risk: Mapping[Category, float], command: float, commanded: bool) -> None:
        index = len(self.times)
        self.times.append(now)
        self.kinds.append(int(kind))
        for cat in Category:
            self.risks.setdefault(cat, [0.0] * index).append(float(risk.get(cat, 0.0)))
        self.commands.append(command)
        if kind is VerdictKind.ALLOW:
            return
        last = self.intervals[-1] if self.intervals else None
        same = last is not None and (last.kind, last.category) == (kind.name, category)
        if last is not None and same and last.end_index == index - 1:
            last.end_s, last.end_index, last.ticks = now, index, last.ticks + 1
            last.commanded_ticks += commanded
        else:
            self.intervals.append(Interval(now, now, kind.name, category, reason, 1, int(commanded), index))


class _Auditor:
    """Feeds one bag's messages to a SafetyMonitor and records what it decides."""

    def __init__(self, bag: BagReader, inputs: _Inputs, monitor_config: MonitorConfig, policy: AuditPolicy | None,
                 config: AuditConfig) -> None:
        self.bag = bag
        self.inputs = inputs
        self.role_of = {topic: role for role, topic in inputs.topics.items()}
        self.config = config
        self.monitor_config = monitor_config
        self.monitor = SafetyMonitor(monitor_config, 0.0)
        self.policy = policy
        self.latest: dict[str, Any] = {}
        self.arrivals: dict[str, list[float]] = {topic: [] for topic in inputs.topics.values()}
        self.malformed: dict[str, list[str]] = {topic: [] for topic in inputs.topics.values()}
        self.header_offsets: list[float] = []
        self.sim_clock: list[float] = []
        self.frames: dict[str, set[str]] = {}
        self.command = (0.0, 0.0)
        self.command_time = -math.inf
        self.timeline = _Timeline([], [], {}, [], {s: [] for s in self._sensors()}, [])
        self.next_policy = 0.0

    def _sensors(self) -> list[Source]:
        """Sources whose age is tracked: those the bag feeds, plus the required ones (even if absent)."""
        present = [_SOURCE_OF_ROLE[r] for r in self.inputs.topics if r in _SOURCE_OF_ROLE]
        return list(dict.fromkeys(present + [Source(s) for s in self.monitor_config.required_sources]))

    def feed(self, message: BagMessage, now: float) -> None:
        role = self.role_of[message.topic]
        self.arrivals[message.topic].append(now)
        try:
            decoded = self.bag.decode(message)
        except BagError as exc:  # one bad message: the node would drop it as malformed, and so does the audit
            self._malformed(role, message.topic, now, str(exc))
            return
        self.latest[message.topic] = decoded
        if role == "clock":
            self.sim_clock.append(decoded.clock.sec + decoded.clock.nanosec * 1e-9)
            return
        if hasattr(decoded, "header"):
            self.header_offsets.append(message.time_ns * 1e-9 - stamp_s(decoded))
            self.frames.setdefault(message.topic, set()).add(decoded.header.frame_id)
        try:
            self._dispatch(role, decoded, now)
        except MessageError as exc:
            self._malformed(role, message.topic, now, str(exc))

    def _malformed(self, role: str, topic: str, now: float, reason: str) -> None:
        self.malformed[topic].append(f"{now:.3f} s: {reason}")
        if role != "clock":
            source = Source.CMD_VEL if role == "command" else _SOURCE_OF_ROLE[role]
            self.monitor.on_malformed(now, source, reason)

    def _dispatch(self, role: str, decoded: Any, now: float) -> None:
        m = self.monitor
        if role == "command":
            twist = twist_from_msg(decoded, self.monitor_config.deadman_timeout_s)
            self.command, self.command_time = (twist.linear_x, twist.angular_z), now
            m.on_twist(now, twist)
        elif role == "scan":
            m.on_scan(now, scan_from_msg(decoded))
        elif role == "costmap":
            m.on_scan(now, costmap_to_scan(decoded))
        elif role == "odom":
            m.on_odom(now, odom_from_msg(decoded))
        elif role == "joint_states":
            m.on_joint_states(now, joint_state_from_msg(decoded))

    def tick(self, now: float) -> None:
        if self.policy is not None and now >= self.next_policy:
            self.next_policy = now + 1.0 / self.config.policy_rate_hz
            proposal = self.policy.propose(now, dict(self.latest))
            if proposal is not None:
                self.monitor.on_action_proposal(now, proposal)
        out = self.monitor.tick(now)
        active = now - self.command_time <= self.monitor_config.deadman_timeout_s
        speed = self.command[0] if active else 0.0
        commanded = active and (self.command[0] != 0.0 or self.command[1] != 0.0)
        v = out.verdict
        self.timeline.add(now, v.kind, v.category, v.reason, v.risk, speed, commanded)
        for source, ages in self.timeline.ages.items():
            age = self.monitor.age(source, now)
            ages.append(math.inf if age is None else age)


def _health(auditor: _Auditor, monitor_config: MonitorConfig, period: float,
            gap_factor: float) -> list[SourceHealth]:
    health = []
    timeouts = monitor_config.source_timeout_s
    for role, topic in auditor.inputs.topics.items():
        times = np.asarray(auditor.arrivals[topic])
        gaps = np.diff(times)
        median = float(np.median(gaps)) if gaps.size else None
        source = _SOURCE_OF_ROLE.get(role)
        timeout = getattr(timeouts, source.value) if source else None
        limit = max(gap_factor * median, timeout or 0.0) if median else None
        long_gaps = [(float(times[i]), float(gaps[i])) for i in np.flatnonzero(gaps > limit)] if limit else []
        ages = np.asarray(auditor.timeline.ages.get(source, [])) if source else np.zeros(0)
        stale_s = float(np.count_nonzero(ages > timeout) * period) if source and timeout else None
        required = source is not None and monitor_config.is_required(source)
        max_gap = float(gaps.max()) if gaps.size else None
        health.append(SourceHealth(role, topic, int(times.size), median, max_gap, long_gaps, stale_s, required,
                                   auditor.malformed[topic], sorted(auditor.frames.get(topic, ()))))
    return health


def load_monitor_config(path: str | Path, node_name: str = "safety_monitor") -> MonitorConfig:
    """The MonitorConfig in a node parameter file (``<node_name>: ros__parameters: ...``) or a plain mapping.

    Raises:
        ConfigError: the file is missing, malformed, or a value is out of range.
    """
    data = load_yaml(path)
    params = data.get(node_name, {}).get("ros__parameters", data) if node_name in data else data
    return from_mapping(MonitorConfig, params, where=str(path))


def run_audit(bag_path: str | Path, config: AuditConfig | None = None,
              monitor_config: MonitorConfig | None = None, policy: AuditPolicy | None = None) -> AuditReport:
    """Audit one bag; see the module docstring.

    Errors while reading (a truncated file, an undecodable message) end the run early: everything read up
    to there is still reported, with the error in ``AuditReport.errors``.

    Raises:
        BagError: the bag cannot be opened at all.
    """
    config = config or AuditConfig()
    started = time.perf_counter()
    with open_bag(bag_path) as bag:
        inputs = _find_inputs(bag, config)
        obstacle_topic = inputs.topics.get("scan") or inputs.topics.get("costmap")
        scan_period = bag.duration_s / max(bag.topic(obstacle_topic).count - 1, 1) if obstacle_topic else None
        mconfig, notes = _audit_monitor_config(monitor_config or MonitorConfig(), inputs, scan_period)
        auditor = _Auditor(bag, inputs, mconfig, policy, config)
        period = mconfig.period
        errors: list[str] = []
        tick_index = 0
        t0 = bag.start_ns
        try:
            for message in bag.messages(list(inputs.topics.values())):
                now = (message.time_ns - t0) * 1e-9
                while tick_index * period <= now:
                    auditor.tick(tick_index * period)
                    tick_index += 1
                auditor.feed(message, now)
        except BagError as exc:
            errors.append(str(exc))
        end = bag.duration_s
        while tick_index * period <= end:
            auditor.tick(tick_index * period)
            tick_index += 1
        offsets = np.asarray(auditor.header_offsets)
        report = AuditReport(
            bag=str(bag.path), storage=bag.storage, ros_distro=bag.ros_distro, start_ns=t0,
            duration_s=bag.duration_s, message_count=bag.message_count,
            topics={t.name: (t.msgtype, t.count) for t in bag.topics},
            inputs=dict(inputs.topics), lacks=inputs.lacks, notes=inputs.notes + notes,
            warnings=list(bag.warnings), errors=errors,
            required_sources=list(mconfig.required_sources), control_rate_hz=mconfig.control_rate_hz,
            header_offset_s=float(np.median(offsets)) if offsets.size else None,
            sim_clock_s=(min(auditor.sim_clock), max(auditor.sim_clock)) if auditor.sim_clock else None,
            times=np.asarray(auditor.timeline.times), kinds=np.asarray(auditor.timeline.kinds),
            commands=np.asarray(auditor.timeline.commands),
            risks={c: np.asarray(v) for c, v in auditor.timeline.risks.items()},
            ages={s.value: np.asarray(v) for s, v in auditor.timeline.ages.items()},
            timeouts={s.value: getattr(mconfig.source_timeout_s, s.value) for s in auditor.timeline.ages},
            intervals=auditor.timeline.intervals,
            sources=_health(auditor, mconfig, period, config.gap_factor),
            wall_s=time.perf_counter() - started,
        )
    _LOG.info("audited %s: %d ticks in %.3f s", bag_path, len(report.times), report.wall_s)
    return report

