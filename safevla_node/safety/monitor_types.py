"""Value types of the safety monitor core: its inputs (sources, odometry, depth) and outputs (tick results,
primitive status, health reports). Plain data, shared by the core, the node's conversions and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from safevla_node.safety.primitives import ArmTrajectory, PrimitivePhase
from safevla_node.safety.types import TwistCommand, Verdict

__all__ = [
    "SENSOR_SOURCES",
    "TIMED_SOURCES",
    "DepthFrame",
    "MonitorReport",
    "OdometryData",
    "PrimitiveStatus",
    "Source",
    "SourceReport",
    "TickOutput",
    "TickStats",
]


class Source(str, Enum):
    """Every input the monitor counts; the first five are sensors with a freshness timeout, and the policy
    heartbeat has one too (it guards discrete primitives only)."""

    SCAN = "scan"
    DEPTH = "depth"
    ODOM = "odom"
    JOINT_STATES = "joint_states"
    OBJECTS = "objects"
    CAMERA_INFO = "camera_info"
    CMD_VEL = "cmd_vel_in"
    ACTION_PROPOSAL = "action_proposal"
    ARM_TRAJECTORY = "arm_trajectory_in"
    POLICY_HEARTBEAT = "policy_heartbeat"
    ACTION_RESULT = "action_result"


SENSOR_SOURCES: tuple[Source, ...] = (
    Source.SCAN, Source.DEPTH, Source.ODOM, Source.JOINT_STATES, Source.OBJECTS)
#: Sources with a freshness timeout (``SourceTimeouts``): the sensors and the proposer's liveliness.
TIMED_SOURCES: tuple[Source, ...] = (*SENSOR_SOURCES, Source.POLICY_HEARTBEAT)


# --- Inputs the node converts messages into ------------------------------------------------------------


@dataclass(frozen=True)
class OdometryData:
    """Base pose in odom (m, m, rad) and body velocity (m/s, rad/s)."""

    x: float
    y: float
    yaw: float
    linear_x: float = 0.0
    angular_z: float = 0.0


@dataclass(frozen=True)
class DepthFrame:
    """A depth image in metres (H, W) float32 (0 or NaN: no return) with pinhole intrinsics (pixels)."""

    depth_m: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float


# --- Outputs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrimitiveStatus:
    """Progress of the discrete action with sequence number ``proposal_id`` (step-synchronous policies wait
    for DONE or ABORTED of their proposal).

    Attributes:
        phase: running / done / aborted; idle before the first proposal, and published as the monitor's
            acknowledgement of an episode reset (``proposal_id`` then the latest proposal's).
        proposal_id: counts proposals since start-up (1 for the first).
        action: the proposed action index (-1 when idle).
        executed: the index actually executed (differs from ``action`` when the shield replaced it).
        reason: why it finished, or the shield's reason for a replacement.
        verdict: the kind of the shield's verdict on the proposal ("allow", "limit", "replace", "stop"),
            or "" where the shield did not judge it (a fail-safe refusal, or a status after the decision).
            It lets an evaluation count interventions per proposal exactly as in-process evaluation does.
        stamp: on DONE/ABORTED, the stamp (s) of the latest odometry when the proposal ended: camera frames
            stamped at or after it were taken after the motion ended (a step-synchronous policy acts on no
            earlier frame); None before, or without stamped odometry.
    """

    phase: PrimitivePhase
    proposal_id: int = 0
    action: int = -1
    executed: int = -1
    reason: str = ""
    verdict: str = ""
    stamp: float | None = None


@dataclass(frozen=True)
class TickOutput:
    """What the node publishes after one control tick.

    Attributes:
        twist: the base command (zero when stopped; always published).
        verdict: the strictest verdict of this tick.
        arm: a joint trajectory to publish now, or None.
        statuses: primitive status changes since the last tick, oldest first.
        publish_state: the verdict changed or the 1 Hz state period elapsed.
        publish_diagnostics: the diagnostics period elapsed.
    """

    twist: TwistCommand
    verdict: Verdict
    arm: ArmTrajectory | None
    statuses: tuple[PrimitiveStatus, ...]
    publish_state: bool
    publish_diagnostics: bool


@dataclass(frozen=True)
class SourceReport:
    """Health of one input for /diagnostics (age None: never received)."""

    source: Source
    required: bool
    age: float | None
    timeout: float | None
    received: int
    dropped: int
    last_drop_reason: str

    @property
    def stale(self) -> bool:
        """Never received, or older than its timeout (command sources never go stale)."""
        return self.timeout is not None and (self.age is None or self.age > self.timeout)


@dataclass
class TickStats:
    """Control-loop timing measured by the node (period between ticks, time spent in one tick)."""

    ticks: int = 0
    last_period: float = 0.0
    max_period: float = 0.0
    last_duration: float = 0.0
    max_duration: float = 0.0
    late_ticks: int = 0

    def record(self, period: float | None, duration: float, nominal_period: float) -> None:
        """Add one tick; a period over 1.5x nominal counts as late."""
        self.ticks += 1
        self.last_duration = duration
        self.max_duration = max(self.max_duration, duration)
        if period is not None:
            self.last_period = period
            self.max_period = max(self.max_period, period)
            self.late_ticks += period > 1.5 * nominal_period


@dataclass(frozen=True)
class MonitorReport:
    """Everything /diagnostics shows."""

    verdict: Verdict
    estop: bool
    estop_reason: str
    sources: tuple[SourceReport, ...]
    primitive: PrimitiveStatus
