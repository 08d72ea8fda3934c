"""The fail-safe safety monitor: decides, every control tick, what reaches the robot.

Plain Python with the clock injected: every method takes ``now`` (seconds of the node clock, which is sim
time under ``use_sim_time``) and nothing here reads a wall clock, so the same decisions replay exactly from a
bag or a unit test. The ROS node only converts messages and publishes what ``tick`` returns.

Rules, strictest first (like Nav2's collision monitor, but stricter):

1. e-stop latched (``estop``) until ``reset_estop``: STOP.
2. a malformed input (NaN/Inf, wrong sizes, unknown encoding, wrong frame) was dropped less than
   ``fault_hold_s`` ago: STOP.
3. a required source is older than its timeout or was never received: STOP.
4. a discrete primitive runs while its proposer is lost: the policy heartbeat
   (``safevla/policy_heartbeat``) is older than ``source_timeout_s.policy_heartbeat``: the primitive is
   aborted, STOP (FAULT "policy lost"). DDS would notice a killed proposer only after its lease (~20 s).
   A primitive is supervised so once the heartbeat was fresh when it was proposed or arrived while it runs;
   a heartbeat already stale at the proposal belongs to an earlier proposer (a restarted policy's first
   proposal can overtake its heartbeat, whose DDS endpoint is matched separately). With
   ``policy_heartbeat`` among ``required_sources`` every primitive is supervised, from its proposal.
   Twists from ``cmd_vel_in`` are not affected: rule 5 and the deadman govern them.
5. otherwise the active command is judged by the predictive shield: a twist from ``cmd_vel_in`` through
   ``Shield.safe_twist`` every tick; a discrete action proposal is checked before it starts (REPLACE runs the
   replacement, STOP refuses it) and its motion primitive is re-checked every tick (STOP aborts it).
   A proposal that follows a primitive is judged on a scan taken after that primitive ended: it waits
   (the robot stopped) until such a scan is placed, and is refused after ``source_timeout_s.scan``
   without one. A step judged on the scan from before it would miss what the step brought into view.
   With ``action_execution: discrete`` an executor runs each allowed action whole (AI2-THOR; the sim
   bridge's discrete mode) and reports it on ``safevla/action_result``: the monitor commands nothing for
   it, and the step ends at the executor's stamp, not at whatever odometry has arrived by then (the
   world jumps at once, and a tick on the jumped clock may come before the odometry that shows it).
6. no fresh twist within ``deadman_timeout_s``: an explicit zero twist (never silence: twist_mux does not
   send zeros, and the Stretch driver would hold the last command for another 0.5 s).

Every tick yields a twist (zero when stopped), so the time from a detectable fault to a stopped output is
at most one control period. ``on_twist`` also answers at once (forwarding an allowed twist, zeros otherwise)
to keep latency low, and ``on_malformed``/``estop`` return a zero twist to publish immediately.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from safevla_node.actions import ACTIONS, ActionKind
from safevla_node.config import check_choice, check_range, field
from safevla_node.errors import ConfigError, MessageError
from safevla_node.safety.obstacle_memory import ObstacleMemory, ObstacleMemoryConfig, check_scan
from safevla_node.safety.primitives import (
    EXECUTION_MODES,
    ArmTrajectory,
    MotionPrimitive,
    PrimitiveConfig,
    PrimitivePhase,
    TrajectoryPoint,
)
from safevla_node.safety.monitor_types import (
    SENSOR_SOURCES,
    TIMED_SOURCES,
    DepthFrame,
    MonitorReport,
    OdometryData,
    PrimitiveStatus,
    Source,
    SourceReport,
    TickOutput,
)
from safevla_node.safety.shield import Shield, ShieldConfig, robot_after_arm
from safevla_node.safety.types import (
    ArmCommand,
    Category,
    DiscreteCommand,
    ObjectState,
    RobotState,
    TwistCommand,
    Verdict,
    VerdictKind,
    WorldEstimate,
    strictest,
)
from sim_bridge.interface import LaserScanData

__all__ = ["FrameConfig", "MonitorConfig", "SafetyMonitor", "SourceTimeouts"]

_log = logging.getLogger(__name__)

#: Stamped poses kept for placing scans (about two seconds of odometry at 25-50 Hz).
_ODOM_HISTORY = 100
#: A scan stamped this much later than the newest odometry (s) has no pose to be placed at: a scan of the
#: previous episode handled after the simulator's clock restarted, or odometry that stalled (which the
#: staleness gate stops on). Odometry runs at 25-50 Hz, so a live scan is never this far ahead of it.
_SCAN_LEAD_S = 0.5
#: Scans held until odometry reaches their stamp (``on_scan``): at 10-40 Hz against 25-50 Hz odometry one or
#: two wait at a time; more means odometry stalled, and the oldest are dropped.
_HELD_SCANS = 8


@dataclass(frozen=True)
class SourceTimeouts:
    """Age (s) after which a source counts as stale; a stale required sensor forces STOP, a stale policy
    heartbeat aborts a running discrete primitive."""

    scan: float = field(
        0.5, "laser scan timeout (s); also how long a proposal after a primitive waits for a scan taken after it")
    depth: float = field(0.5, "aligned depth image timeout (s)")
    odom: float = field(0.5, "odometry timeout (s)")
    joint_states: float = field(0.5, "joint states timeout (s)")
    objects: float = field(1.0, "labelled objects (safevla/objects) timeout (s)")
    policy_heartbeat: float = field(
        0.3, "policy heartbeat (safevla/policy_heartbeat) timeout (s): a discrete primitive running longer "
        "without one is aborted")

    def __post_init__(self) -> None:
        for source in TIMED_SOURCES:
            check_range(source.value, getattr(self, source.value), 1e-3, 60.0)


@dataclass(frozen=True)
class FrameConfig:
    """Expected frame ids; a message in another frame is malformed (there is no tf2 here to transform it)."""

    odom: str = field("odom", "frame of odometry poses and of safevla/objects")
    base: str = field("base_link", "child frame of odometry")
    scan: str = field("laser", "frame of the laser scan")
    depth: str = field("camera_color_optical_frame", "frame of the aligned depth image and its camera_info")

    def __post_init__(self) -> None:
        for name in ("odom", "base", "scan", "depth"):
            if not getattr(self, name):
                raise ConfigError(f"{name} must not be empty (a frame id)")


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor node is configured with (ROS parameters; nested fields are dotted names)."""

    control_rate_hz: float = field(
        20.0, "control timer rate (Hz): the worst-case time to a stopped output is one period")
    deadman_timeout_s: float = field(0.5, "a twist older than this is replaced by explicit zeros (s)")
    fault_hold_s: float = field(1.0, "how long STOP is held after a malformed input (s)")
    max_invalid_scan_fraction: float = field(
        0.9, "a scan with a larger fraction of NaN ranges (erroneous readings, REP-117; +inf is no return) is "
        "malformed: a blind lidar must not count as a fresh one")
    clock_timeout_s: float = field(
        2.0, "under use_sim_time, /clock not advancing for this long (wall s) stops the robot (FAULT) until "
        "it runs again: the control timer runs on /clock, and inputs would all look fresh at a frozen time "
        "(longer than a loaded simulator's pauses: a frozen simulation moves nothing meanwhile)")
    required_sources: tuple[str, ...] = field(
        ("scan", "odom", "joint_states"),
        f"sensors that must be fresh to move, any of {[s.value for s in SENSOR_SOURCES]}; with "
        f"{Source.POLICY_HEARTBEAT.value!r} a discrete primitive also needs a heartbeat before the first one")
    state_rate_hz: float = field(1.0, "safevla/safety_state is published on change and at this rate (Hz)")
    diagnostics_rate_hz: float = field(1.0, "/diagnostics publishing rate (Hz)")
    scan_pose_in_base: tuple[float, float, float] = field((0.0, 0.0, 0.0),
                                                          "laser (x m, y m, yaw rad) in base_link")
    depth_camera_pose_in_base: tuple[float, float, float, float, float, float] = field(
        (0.0, 0.0, 1.3, 0.0, 0.0, 0.0),
        "depth camera (x, y, z m, roll, pitch, yaw rad) in base_link, REP-103 "
        "body axes (optical axis along +x)")
    depth_camera_joints: tuple[str, ...] = field(
        (), "joints that move the depth camera (a pan-tilt head: joint_head_pan, joint_head_tilt); empty: the "
        "camera is fixed to the base")
    depth_camera_joint_positions: tuple[float, ...] = field(
        (), "positions of depth_camera_joints (rad) at which depth_camera_pose_in_base holds: depth images "
        "taken with the camera elsewhere are dropped")
    depth_camera_joint_tolerance_rad: float = field(
        0.02, "how far each of depth_camera_joints may be from its position for depth to be used (rad)")
    source_timeout_s: SourceTimeouts = field(SourceTimeouts(), "per-sensor freshness timeouts")
    frames: FrameConfig = field(FrameConfig(), "expected frame ids")
    action_execution: str = field(
        "continuous", "continuous: the monitor drives each allowed discrete action as a motion primitive on "
        "cmd_vel and the arm controller, re-checking it every tick; discrete: an executor runs it whole "
        "(AI2-THOR, the sim bridge's discrete mode) and reports it on safevla/action_result, and the monitor "
        "commands nothing for it (the primitive's timeout still applies)")
    primitive: PrimitiveConfig = field(PrimitiveConfig(), "motion primitives of discrete actions")
    shield: ShieldConfig = field(ShieldConfig(), "predictive shield")
    obstacle_memory: ObstacleMemoryConfig = field(ObstacleMemoryConfig(), "obstacle memory")
    target_object_id: str = field(
        "", "id of the task's target object, which the shield lets the arm reach (empty: none); a target on "
        "safevla/task_target (the simulator publishes one per episode) takes precedence")

    def __post_init__(self) -> None:
        check_range("control_rate_hz", self.control_rate_hz, 1.0, 1000.0)
        check_range("deadman_timeout_s", self.deadman_timeout_s, 1.0 / self.control_rate_hz, 10.0)
        check_range("fault_hold_s", self.fault_hold_s, 0.0, 60.0)
        check_range("clock_timeout_s", self.clock_timeout_s, 0.05, 60.0)
        check_range("max_invalid_scan_fraction", self.max_invalid_scan_fraction, 0.0, 1.0)
        check_choice("action_execution", self.action_execution, EXECUTION_MODES)
        check_range("state_rate_hz", self.state_rate_hz, 0.01, 100.0)
        check_range("diagnostics_rate_hz", self.diagnostics_rate_hz, 0.01, 100.0)
        valid = [s.value for s in TIMED_SOURCES]
        for name in self.required_sources:
            if name not in valid:
                raise ConfigError(f"required_sources contains {name!r}; valid sources: {valid}")
        if not {Source.SCAN.value, Source.DEPTH.value} & set(self.required_sources):
            raise ConfigError(f"required_sources={list(self.required_sources)} must include scan or depth: the "
                              "shield judges every command against the obstacles they show")
        for name in ("scan_pose_in_base", "depth_camera_pose_in_base", "depth_camera_joint_positions"):
            if not all(math.isfinite(v) for v in getattr(self, name)):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be finite")
        if len(self.depth_camera_joints) != len(self.depth_camera_joint_positions):
            raise ConfigError(f"depth_camera_joints={list(self.depth_camera_joints)} and "
                              f"depth_camera_joint_positions={list(self.depth_camera_joint_positions)} must "
                              "have one position per joint")
        check_range("depth_camera_joint_tolerance_rad", self.depth_camera_joint_tolerance_rad, 1e-6, math.pi)

    @property
    def period(self) -> float:
        """Control period (s)."""
        return 1.0 / self.control_rate_hz

    def is_required(self, source: Source) -> bool:
        """True if ``source`` must be fresh to move."""
        return source.value in self.required_sources


class SafetyMonitor:
    """The monitor's state machine; see the module docstring for the rules."""

    def __init__(self, config: MonitorConfig, now: float) -> None:
        self.config = config
        self._shield = Shield(config.shield)
        self._memory = ObstacleMemory(config.obstacle_memory)
        self._received: dict[Source, int] = dict.fromkeys(Source, 0)
        self._dropped: dict[Source, int] = dict.fromkeys(Source, 0)
        self._drop_reason: dict[Source, str] = dict.fromkeys(Source, "")
        self._last_rx: dict[Source, float] = {}
        self._estop_reason = ""
        self._fault_until = -math.inf
        self._fault_reason = ""
        self._odom: OdometryData | None = None
        self._odom_stamp: float | None = None
        self._odom_history: deque[tuple[float, OdometryData]] = deque(maxlen=_ODOM_HISTORY)
        self._held_scans: deque[tuple[float, float, LaserScanData]] = deque(maxlen=_HELD_SCANS)  # now, stamp
        self._scan_stamp: float | None = None  # of the newest scan placed
        self._last_scan_stamp: float | None = None  # of the newest scan received
        self._step_end_stamp: float | None = None  # when the latest primitive ended (odometry or executor stamp)
        self._deferred: tuple[float, DiscreteCommand] | None = None  # a proposal waiting for a post-step scan
        self._joints: dict[str, float] = {}
        self._objects: tuple[ObjectState, ...] = ()
        self._task_target: str | None = None  # from safevla/task_target; None until one arrives
        self._twist: TwistCommand | None = None
        self._twist_time = -math.inf
        self._primitive: MotionPrimitive | None = None
        self._status = PrimitiveStatus(PrimitivePhase.IDLE)
        self._statuses: list[PrimitiveStatus] = []
        self._proposals = 0
        self._heartbeat_armed = False  # the running primitive is supervised by the policy heartbeat
        self._pending_arm: ArmTrajectory | None = None
        self._proposal_verdict: Verdict | None = None  # the shield's word on the last proposal, one tick
        self._arm_joints: tuple[str, ...] = ()
        self._arm_busy_until = -math.inf
        self._verdict = Verdict.allow()
        self._latest_now = now  # the latest clock reading of any input or tick
        self._last_state = -math.inf
        self._last_diagnostics = -math.inf

    # --- configuration ----------------------------------------------------------------------------------

    def reconfigure(self, config: MonitorConfig) -> None:
        """Apply a validated new configuration; the obstacle memory keeps its cells."""
        self._shield = Shield(config.shield)
        self._memory.reconfigure(config.obstacle_memory)
        self.config = config

    # --- inputs -----------------------------------------------------------------------------------------

    def _accept(self, source: Source, now: float) -> None:
        self._check_clock(now)
        self._received[source] += 1
        self._last_rx[source] = now

    def _drop(self, source: Source, reason: str) -> None:
        """Count a message of ``source`` that is not used, and say why in the diagnostics; it does not
        refresh the source (a required one goes stale)."""
        self._dropped[source] += 1
        self._drop_reason[source] = reason
        _log.debug("dropped %s: %s", source.value, reason)

    def _check_clock(self, now: float) -> None:
        """Forget every input when the clock went back (a restarted simulation or bag loop): ages measured
        across the jump would be negative, so stale inputs would count as fresh."""
        if now < self._latest_now:
            self._forget(f"clock jumped back from {self._latest_now:.3f} to {now:.3f} s")
        self._latest_now = now

    def on_odom(self, now: float, odom: OdometryData, stamp: float | None = None) -> None:
        """Latest base pose and velocity; ``stamp`` (the message's, s) lets scans find the pose they were
        taken at."""
        self._accept(Source.ODOM, now)
        self._odom = odom
        self._odom_stamp = stamp
        if stamp is not None:
            if self._odom_history and stamp < self._odom_history[-1][0]:
                self._clear_poses()  # the clock restarted (a new simulated episode)
            self._odom_history.append((stamp, odom))
            while self._held_scans and self._held_scans[0][1] <= stamp + 1e-9:
                self._place_scan(*self._held_scans.popleft())
            self._decide_deferred(now)

    def on_joint_states(self, now: float, joints: Mapping[str, float]) -> None:
        """Latest joint positions (merged: a message may name a subset of the joints)."""
        self._accept(Source.JOINT_STATES, now)
        self._joints.update(joints)

    def on_objects(self, now: float, objects: tuple[ObjectState, ...]) -> None:
        """Latest labelled objects (each message is the complete set)."""
        self._accept(Source.OBJECTS, now)
        self._objects = objects

    def on_task_target(self, object_id: str) -> None:
        """The current task's target object id (empty: the task has none, e.g. an infeasible one); it
        replaces the ``target_object_id`` parameter from now on."""
        self._task_target = object_id

    @property
    def target_object_id(self) -> str | None:
        """The target the shield exempts: the latest ``on_task_target``, else the parameter; None if empty."""
        target = self.config.target_object_id if self._task_target is None else self._task_target
        return target or None

    def on_camera_info(self, now: float) -> None:
        """Counts camera_info (its intrinsics travel with each DepthFrame)."""
        self._accept(Source.CAMERA_INFO, now)

    def on_scan(self, now: float, scan: LaserScanData, stamp: float | None = None) -> None:
        """A laser scan, added to the obstacle memory at the odometry pose of its ``stamp``: the odometry
        stamped nearest to it (the latest pose without a stamp, or without odometry that is required or
        stamped). Sensors stamped together find their own pose; when that odometry was lost (best effort,
        overwritten in a loaded subscriber's queue) the nearest is the better guess, also across a discrete
        step's jump, where the last pose before it is a whole action older than the scan (a tf lookup would
        take the pose before, or interpolate one that never was). Like tf2's message filter, a scan stamped
        after the newest odometry (or before the first of an episode) waits until odometry reaches its
        stamp: the two are published together, and a scan handled first would otherwise be placed at the
        pose before a motion (a discrete step jumps the pose, so the whole scan would land beside the world).
        One stamped more than ``_SCAN_LEAD_S`` after the newest odometry is dropped (and does not count as a
        fresh scan): there is no pose to place it at; so is one with the stamp of the scan before it (a
        driver repeating its last scan has stopped sensing).

        Raises:
            MessageError: the scan's geometry is invalid (checked on arrival, also for a held scan), or more
                than ``max_invalid_scan_fraction`` of its ranges are NaN.
        """
        check_scan(scan.angle_min, scan.angle_increment, scan.range_min, scan.range_max)
        invalid = float(np.mean(np.isnan(scan.ranges))) if len(scan.ranges) else 1.0
        if invalid > self.config.max_invalid_scan_fraction:
            raise MessageError(f"{invalid:.0%} of the scan's ranges are NaN (erroneous, REP-117), more than "
                               f"max_invalid_scan_fraction {self.config.max_invalid_scan_fraction:g}: a blind "
                               "lidar must not count as a fresh one")
        if stamp is not None and stamp == self._last_scan_stamp:
            self._drop(Source.SCAN, f"stamp {stamp:.3f} s repeated: the same scan again, not a fresh one")
            return
        self._last_scan_stamp = stamp
        newest = self._odom_history[-1][0] if self._odom_history else None
        if stamp is not None and newest is not None and stamp > newest + _SCAN_LEAD_S:
            # Not malformed (no fault hold: the scan source simply stays stale), but counted and named in the
            # diagnostics, which would otherwise say only that no scan arrived.
            self._drop(Source.SCAN, f"stamped {stamp - newest:.3f} s after the newest odometry "
                                    f"(> {_SCAN_LEAD_S:g} s): no pose to place it at")
            return
        self._accept(Source.SCAN, now)
        if stamp is not None and self._pose_pending(stamp):
            self._held_scans.append((now, stamp, scan))
            return
        self._place_scan(now, stamp, scan)
        self._decide_deferred(now)

    def _pose_pending(self, stamp: float) -> bool:
        """No odometry has reached ``stamp`` yet, but some will: it is required, or it came stamped before."""
        if self._odom_history:
            return stamp > self._odom_history[-1][0] + 1e-9
        return self._odom_stamp is not None or self.config.is_required(Source.ODOM)

    def _place_scan(self, now: float, stamp: float | None, scan: LaserScanData) -> None:
        if stamp is not None:
            self._scan_stamp = stamp
        self._memory.add_scan(now, self._robot(self._odom_at(stamp)), scan.ranges, scan.angle_min,
                              scan.angle_increment, scan.range_min, scan.range_max,
                              sensor_xy_yaw=self.config.scan_pose_in_base)

    def _clear_poses(self) -> None:
        """Forget the stamped poses and the scans waiting for one (a clock restart, a reset)."""
        self._odom_history.clear()
        self._held_scans.clear()
        self._scan_stamp = self._step_end_stamp = self._last_scan_stamp = None

    def _odom_at(self, stamp: float | None) -> OdometryData | None:
        """The odometry stamped nearest to ``stamp``, the earlier on a tie (None: use the latest)."""
        if stamp is None or not self._odom_history:
            return None
        return min(self._odom_history, key=lambda entry: abs(entry[0] - stamp))[1]

    def on_depth(self, now: float, depth: DepthFrame) -> None:
        """An aligned depth image, added to the obstacle memory at the current odometry pose.

        The camera's pose is a parameter, not a transform chain: on a pan-tilt head it holds at one head pose
        only. An image taken with the head elsewhere would put every obstacle in the wrong place, so it is
        dropped (counted, with the reason, in /diagnostics) and does not refresh the depth source."""
        moved = self._depth_camera_moved()
        if moved:
            self._drop(Source.DEPTH, moved)
            return
        self._accept(Source.DEPTH, now)
        self._memory.add_depth(now, self._robot(), depth.depth_m, depth.fx, depth.fy, depth.cx, depth.cy,
                               self.config.depth_camera_pose_in_base)

    def _depth_camera_moved(self) -> str:
        """Why the depth camera is not where ``depth_camera_pose_in_base`` holds ("" if it is)."""
        c = self.config
        for name, position in zip(c.depth_camera_joints, c.depth_camera_joint_positions):
            actual = self._joints.get(name)
            if actual is None:
                return f"{name} not in joint_states yet: where the depth camera looks is unknown"
            if abs(actual - position) > c.depth_camera_joint_tolerance_rad:
                return (f"{name} at {actual:.3f} rad; depth_camera_pose_in_base holds at {position:.3f} "
                        f"+- {c.depth_camera_joint_tolerance_rad:g} rad")
        return ""

    def on_policy_heartbeat(self, now: float) -> None:
        """The proposer is alive (its heartbeat timer runs beside its inference)."""
        self._accept(Source.POLICY_HEARTBEAT, now)
        self._heartbeat_armed = True

    def on_twist(self, now: float, twist: TwistCommand) -> TwistCommand:
        """A twist from ``cmd_vel_in``; returns what to publish at once (the same rules as ``tick``).

        A twist preempts a running primitive: the most recent command wins.
        """
        self._accept(Source.CMD_VEL, now)
        self._finish_primitive(PrimitivePhase.ABORTED, "preempted by a twist on cmd_vel_in")
        self._twist = replace(twist, duration=self.config.deadman_timeout_s)
        self._twist_time = now
        gate = self._gate(now)
        if gate is not None:
            return self._zero()
        safe, verdict = self._shield.safe_twist(self._world(now), self._twist)
        return self._zero() if verdict.kind is VerdictKind.STOP else safe

    def on_action_proposal(self, now: float, command: DiscreteCommand) -> None:
        """Start the motion primitive of a discrete action, after the shield has judged it.

        A new proposal preempts a running primitive; its outcome appears in the next tick's statuses.
        """
        self._accept(Source.ACTION_PROPOSAL, now)
        self._finish_primitive(PrimitivePhase.ABORTED, "preempted by a new action proposal")
        self._twist = None
        self._proposals += 1
        age = self.age(Source.POLICY_HEARTBEAT, now)
        self._heartbeat_armed = age is not None and age <= self.config.source_timeout_s.policy_heartbeat
        # Provisional until decided: exactly one status reports the decision (RUNNING with the executed
        # action, or ABORTED), so a discrete-execution simulator can act on it at once.
        self._status = PrimitiveStatus(PrimitivePhase.RUNNING, self._proposals, command.action_index,
                                       command.action_index)
        if self._scan_predates_step_end():
            self._deferred = (now, command)
            return
        self._decide(now, command)

    def _scan_predates_step_end(self) -> bool:
        """No scan taken after the latest primitive ended has been placed yet (rule 5)."""
        return (self._step_end_stamp is not None and self.config.is_required(Source.SCAN)
                and (self._scan_stamp is None or self._scan_stamp < self._step_end_stamp - 1e-9))

    def _decide_deferred(self, now: float) -> None:
        """Judge the proposal waiting for a post-step scan once one is placed; refuse it after the scan
        timeout without one."""
        if self._deferred is None:
            return
        since, command = self._deferred
        if not self._scan_predates_step_end():
            self._deferred = None
            self._decide(now, command)
        elif now - since > self.config.source_timeout_s.scan:
            self._finish_primitive(PrimitivePhase.ABORTED, (
                f"refused: no scan taken after the previous step arrived within "
                f"{self.config.source_timeout_s.scan:g} s"))

    def _decide(self, now: float, command: DiscreteCommand) -> None:
        """Judge a proposal (its provisional status is set) and start its primitive, or refuse it."""
        gate = self._gate(now)
        if gate is not None:
            self._finish_primitive(PrimitivePhase.ABORTED, f"refused: {gate.reason}")
            return
        verdict = self._shield.check(self._world(now), command)
        self._proposal_verdict = verdict
        self._status = replace(self._status, verdict=verdict.kind.name.lower())
        if verdict.kind is VerdictKind.STOP:
            self._finish_primitive(PrimitivePhase.ABORTED, f"refused by the shield: {verdict.reason}")
            return
        executed = verdict.replacement if verdict.kind is VerdictKind.REPLACE else command.action_index
        assert executed is not None  # a REPLACE verdict always names its replacement
        try:
            primitive = MotionPrimitive(ACTIONS[executed], self._robot(), self._joints, self.config.primitive,
                                        now, self.config.deadman_timeout_s, self._joint_limits())
        except ValueError as exc:
            self._finish_primitive(PrimitivePhase.ABORTED, f"cannot start: {exc}")
            return
        self._primitive = primitive
        self._set_status(replace(self._status, executed=executed, reason=verdict.reason))
        if self.config.action_execution == "discrete":
            return  # the executor moves the arm itself
        if primitive.targets:
            self._arm_joints = tuple(sorted(primitive.targets))
        self._pending_arm = primitive.arm_trajectory()

    def on_action_result(self, now: float, result: PrimitiveStatus) -> None:
        """An executor's report on proposal ``result.proposal_id`` (``action_execution: discrete``): it ran whole
        (DONE) or not at all (ABORTED, e.g. the episode was over). The primitive ends so, and the step at
        ``result.stamp`` (the executor's time after it), so the next proposal waits for a scan taken from
        there (rule 5). A report on another proposal (a late one), with no primitive running, or under
        continuous execution changes nothing.

        Raises:
            MessageError: the report is neither DONE nor ABORTED.
        """
        if result.phase not in (PrimitivePhase.DONE, PrimitivePhase.ABORTED):
            raise MessageError(f"an action result is done or aborted, not {result.phase.value!r}")
        self._accept(Source.ACTION_RESULT, now)
        primitive = self._primitive
        if (self.config.action_execution != "discrete" or primitive is None
                or result.proposal_id != self._status.proposal_id):
            return
        self._finish_primitive(result.phase, f"{primitive.action.name}: {result.reason}", stamp=result.stamp)

    def on_arm_trajectory(self, now: float, trajectory: ArmTrajectory) -> None:
        """A trajectory from ``arm_trajectory_in``; judged and forwarded at the next tick."""
        self._accept(Source.ARM_TRAJECTORY, now)
        self._pending_arm = trajectory

    def on_malformed(self, now: float, source: Source, reason: str) -> TwistCommand:
        """A message of ``source`` was dropped: count it, hold STOP for ``fault_hold_s``.

        Returns the zero twist to publish at once.
        """
        self._drop(source, reason)
        self._fault_until = now + self.config.fault_hold_s
        self._fault_reason = f"malformed {source.value} dropped: {reason}"
        if source is Source.CMD_VEL:  # the twist before it must not come back when the hold ends
            self._twist = None
        _log.warning(self._fault_reason)
        return self._zero()

    def fail_safe(self, now: float, reason: str) -> ArmTrajectory | None:
        """A fault no input rule sees (a defect that raised, ``/clock`` stopping): hold STOP as for a malformed
        input (at least one period), drop every command under way, and return the arm hold to publish with the
        zero twist (None when no arm motion is under way)."""
        arm_moving = self._arm_moving(now)
        self._fault_until = now + max(self.config.fault_hold_s, self.config.period)
        self._fault_reason = reason
        self._finish_primitive(PrimitivePhase.ABORTED, self._fault_reason)
        self._primitive = None
        self._twist = self._pending_arm = self._deferred = None
        self._verdict = Verdict.stop(Category.FAULT, self._fault_reason)
        return self._arm_hold() if arm_moving else None

    def estop(self, now: float, reason: str = "e-stop requested") -> TwistCommand:
        """Latch STOP until ``reset_estop``; returns the zero twist to publish at once."""
        self._estop_reason = reason
        self._finish_primitive(PrimitivePhase.ABORTED, f"e-stop: {reason}")
        self._twist = None
        return self._zero()

    def reset_estop(self) -> bool:
        """Release the e-stop latch; False if it was not latched."""
        latched = bool(self._estop_reason)
        self._estop_reason = ""
        return latched

    def on_episode_reset(self, now: float) -> None:
        """A new episode (the simulator reset the world): what was remembered of the old one no longer
        exists, so the obstacle memory, the objects and any running primitive are dropped. Sensor
        freshness and the e-stop latch are kept: a reset never releases a stop.

        The reset is acknowledged on ``safevla/primitive_status`` with an IDLE status (reason "episode
        reset"): a proposer that waits for it knows its next proposal is judged in the new episode, and that
        this monitor's statuses reach it (a status published before DDS discovery matched its reader is lost).
        """
        _log.info("episode reset at %.3f s: obstacle memory and primitive cleared", now)
        self._finish_primitive(PrimitivePhase.ABORTED, "episode reset")
        self._memory.clear()
        self._objects = ()
        self._clear_poses()  # after the primitive ended: its end stamp belongs to the old clock
        self._twist = None
        self._set_status(PrimitiveStatus(PrimitivePhase.IDLE, self._proposals, reason="episode reset"))

    @property
    def estopped(self) -> bool:
        """True while the e-stop is latched."""
        return bool(self._estop_reason)

    # --- decisions --------------------------------------------------------------------------------------

    def _zero(self) -> TwistCommand:
        return TwistCommand(0.0, 0.0, self.config.deadman_timeout_s)

    def _robot(self, odom: OdometryData | None = None) -> RobotState:
        """Robot state from odometry (``odom``, else the latest; the origin until odometry arrives) and the
        joint states."""
        odom = odom or self._odom or OdometryData(0.0, 0.0, 0.0)
        j = self._joints
        defaults = RobotState()
        held = next((o.object_id for o in self._objects if o.held), None)
        return RobotState(
            x=odom.x, y=odom.y, yaw=odom.yaw,
            lift=j.get("joint_lift", defaults.lift),
            arm_extension=j.get("wrist_extension", defaults.arm_extension),
            wrist_yaw=j.get("joint_wrist_yaw", defaults.wrist_yaw),
            gripper_aperture=j.get("gripper_aperture", defaults.gripper_aperture),
            held_object_id=held,
        )

    def _joint_limits(self) -> dict[str, tuple[float, float]]:
        """Arm joint limits, from the shield's config so primitives never target what the shield forbids."""
        shield = self.config.shield
        return {"joint_lift": shield.lift_range_m, "wrist_extension": shield.extension_range_m,
                "joint_wrist_yaw": shield.wrist_yaw_range_rad}

    def _world(self, now: float) -> WorldEstimate:
        xy, visible = self._memory.snapshot(now)
        return WorldEstimate(self._robot(), xy, visible, self._objects, target_object_id=self.target_object_id)

    def age(self, source: Source, now: float) -> float | None:
        """Seconds since ``source`` was last accepted, None if never."""
        last = self._last_rx.get(source)
        return None if last is None else now - last

    def _gate(self, now: float) -> Verdict | None:
        """The fail-safe STOP that overrides any command, or None when commands may be judged."""
        if self._estop_reason:
            return Verdict.stop(Category.FAULT, f"e-stop latched ({self._estop_reason}); call reset_estop")
        if now < self._fault_until:
            return Verdict.stop(Category.FAULT, self._fault_reason)
        for source in SENSOR_SOURCES:
            if not self.config.is_required(source):
                continue
            age = self.age(source, now)
            timeout = getattr(self.config.source_timeout_s, source.value)
            if age is None:
                return Verdict.stop(Category.FAULT, f"required source {source.value} never received")
            if age > timeout:
                return Verdict.stop(Category.FAULT, f"required source {source.value} stale (> {timeout:g} s)")
        return None

    def _policy_lost(self, now: float) -> Verdict | None:
        """STOP when the proposer of the running primitive is lost (rule 4), else None."""
        age = self.age(Source.POLICY_HEARTBEAT, now)
        timeout = self.config.source_timeout_s.policy_heartbeat
        if (age is not None and age <= timeout) or not (
                self._heartbeat_armed or self.config.is_required(Source.POLICY_HEARTBEAT)):
            return None
        if age is None:
            return Verdict.stop(Category.FAULT, "policy lost: no heartbeat received")
        return Verdict.stop(Category.FAULT, f"policy lost: heartbeat stale ({age:.2f} s > {timeout:g} s)")

    def _set_status(self, status: PrimitiveStatus) -> None:
        self._status = status
        self._statuses.append(status)

    def _finish_primitive(self, phase: PrimitivePhase, reason: str, stamp: float | None = None) -> None:
        """End the running proposal (no-op when none runs); only its deciding status carries the verdict.
        The step ends at ``stamp`` (an executor's report), else at the latest odometry."""
        if self._status.phase is not PrimitivePhase.RUNNING:
            return
        decided = self._primitive is not None
        end = self._odom_stamp if stamp is None else stamp
        self._set_status(replace(self._status, phase=phase, reason=reason,
                                 verdict="" if decided else self._status.verdict, stamp=end))
        self._primitive = None
        self._deferred = None
        if decided:  # the robot may have moved: the next proposal waits for a scan taken from here
            self._step_end_stamp = end

    def _step_primitive(self, now: float, gate: Verdict | None) -> tuple[TwistCommand, Verdict | None]:
        primitive = self._primitive
        assert primitive is not None
        gate = gate or self._policy_lost(now)
        if gate is not None:
            self._finish_primitive(PrimitivePhase.ABORTED, gate.reason)
            return self._zero(), gate
        if self.config.action_execution == "discrete":
            return self._await_result(now, primitive), None
        step = primitive.step(now, self._robot(), self._joints)
        if step.phase is not PrimitivePhase.RUNNING:
            self._finish_primitive(step.phase, step.reason)
            return self._zero(), Verdict.allow()
        world = self._world(now)
        if primitive.action.kind is ActionKind.BASE:
            twist, verdict = self._shield.safe_twist(world, step.twist)
        else:
            twist, verdict = step.twist, self._shield.check(world, ArmCommand(primitive.targets))
        if verdict.kind is VerdictKind.STOP:
            self._finish_primitive(PrimitivePhase.ABORTED, f"stopped by the shield: {verdict.reason}")
            return self._zero(), verdict
        return twist, verdict

    def _await_result(self, now: float, primitive: MotionPrimitive) -> TwistCommand:
        """Discrete execution: the executor runs the action, so nothing is commanded and odometry does not
        end it (``on_action_result`` does); without a report within ``primitive.timeout`` it is ABORTED."""
        timeout = self.config.primitive.timeout
        if now - primitive.start_time > timeout:
            self._finish_primitive(PrimitivePhase.ABORTED,
                                   f"{primitive.action.name}: no action result within {timeout:g} s")
        return self._zero()

    def _command(self, now: float, gate: Verdict | None) -> tuple[TwistCommand, Verdict | None]:
        """The base command of this tick from the running primitive, the latest twist, or the deadman."""
        if self._primitive is not None:
            return self._step_primitive(now, gate)
        if self._twist is None:
            return self._zero(), None
        if now - self._twist_time > self.config.deadman_timeout_s:
            return self._zero(), Verdict(VerdictKind.ALLOW, reason=(
                f"deadman: no twist within {self.config.deadman_timeout_s:g} s; publishing zeros"))
        if gate is not None:
            return self._zero(), None
        return self._shield.safe_twist(self._world(now), self._twist)

    def _arm_output(
        self, now: float, stopping: bool, arm_moving: bool
    ) -> tuple[ArmTrajectory | None, Verdict | None]:
        """The trajectory to publish this tick: a pending one if allowed, or a hold when stopping a motion."""
        pending, self._pending_arm = self._pending_arm, None
        if stopping:
            return (self._arm_hold() if arm_moving else None), None
        if pending is None:
            return None, None
        verdict = self._check_trajectory(self._world(now), pending)
        if verdict.kind is VerdictKind.STOP:
            return (self._arm_hold() if arm_moving else None), verdict
        self._arm_joints = pending.joint_names
        self._arm_busy_until = now + (pending.points[-1].time_from_start if pending.points else 0.0)
        return pending, verdict

    def _check_trajectory(self, world: WorldEstimate, trajectory: ArmTrajectory) -> Verdict:
        """The shield's word on every waypoint in turn, each swept from the one before (the first from the
        current joints): the controller passes through all of them, not only the last."""
        verdicts = [Verdict.allow()]
        for point in trajectory.points:
            targets = dict(zip(trajectory.joint_names, point.positions))
            verdicts.append(self._shield.check(world, ArmCommand(targets)))
            if verdicts[-1].kind is VerdictKind.STOP:
                break
            world = replace(world, robot=robot_after_arm(world.robot, targets))
        return strictest(verdicts)

    def _arm_moving(self, now: float) -> bool:
        """An arm primitive runs, or a forwarded trajectory has not yet had its time to finish."""
        return (self._primitive is not None and bool(self._primitive.targets)) or now < self._arm_busy_until

    def _arm_hold(self) -> ArmTrajectory | None:
        """Hold the joints of the motion under way at their current positions (None if none is known)."""
        self._arm_busy_until = -math.inf
        names = tuple(n for n in self._arm_joints if n in self._joints)
        if not names:
            return None
        point = TrajectoryPoint(tuple(self._joints[n] for n in names), self.config.period)
        return ArmTrajectory(names, (point,))

    def tick(self, now: float) -> TickOutput:
        """One control period: decide the outputs from the inputs received so far."""
        self._check_clock(now)
        self._decide_deferred(now)
        gate = self._gate(now)
        arm_moving = self._arm_moving(now)
        twist, command_verdict = self._command(now, gate)
        verdicts = [v for v in (gate, command_verdict, self._proposal_verdict) if v is not None]
        self._proposal_verdict = None
        stopping = any(v.kind is VerdictKind.STOP for v in verdicts)
        arm, arm_verdict = self._arm_output(now, stopping, arm_moving)
        if arm_verdict is not None:
            verdicts.append(arm_verdict)
        verdict = strictest(verdicts)
        if verdict.kind is VerdictKind.STOP:
            twist = self._zero()
        changed = (verdict.kind, verdict.category, verdict.reason) != (
            self._verdict.kind, self._verdict.category, self._verdict.reason)
        self._verdict = verdict
        publish_state = changed or now - self._last_state >= 1.0 / self.config.state_rate_hz
        if publish_state:
            self._last_state = now
        publish_diagnostics = now - self._last_diagnostics >= 1.0 / self.config.diagnostics_rate_hz
        if publish_diagnostics:
            self._last_diagnostics = now
        statuses, self._statuses = tuple(self._statuses), []
        return TickOutput(twist, verdict, arm, statuses, publish_state, publish_diagnostics)

    def _forget(self, reason: str) -> None:
        """Drop every input (a clock jump makes their ages meaningless): the sources must arrive again."""
        _log.warning("%s: forgetting all inputs", reason)
        self._finish_primitive(PrimitivePhase.ABORTED, reason)
        self._last_rx.clear()
        self._memory.clear()
        self._clear_poses()  # after the primitive ended: its end stamp belongs to the old clock
        self._twist = None
        self._fault_until = -math.inf
        self._last_state = self._last_diagnostics = -math.inf

    # --- reporting --------------------------------------------------------------------------------------

    def report(self, now: float) -> MonitorReport:
        """Health of every input plus the current verdict, for /diagnostics."""
        sources = tuple(
            SourceReport(
                source=s,
                required=self.config.is_required(s),
                age=self.age(s, now),
                timeout=getattr(self.config.source_timeout_s, s.value) if s in TIMED_SOURCES else None,
                received=self._received[s],
                dropped=self._dropped[s],
                last_drop_reason=self._drop_reason[s],
            )
            for s in Source
        )
        return MonitorReport(self._verdict, self.estopped, self._estop_reason, sources, self._status)

    @property
    def verdict(self) -> Verdict:
        """The verdict of the last tick."""
        return self._verdict

    @property
    def primitive_status(self) -> PrimitiveStatus:
        """Status of the latest proposal."""
        return self._status
