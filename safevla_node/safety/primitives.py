"""Discrete SafeVLA actions as closed-loop motion primitives on odometry and joint states.

The policy thinks in discrete steps ("move ahead 0.2 m", "arm up 0.1 m"); a real base only takes velocities
and a real arm joint targets. A ``MotionPrimitive`` turns one action into those, closing the loop on what the
robot reports instead of timing an open-loop command: base moves and turns run a saturated P-controller on
odometry until the remaining error is within tolerance; arm and gripper actions send one joint target
(relative to the joint states at the start) and wait until the joint states reach it. Every primitive has a
timeout so a stuck robot ends as ``ABORTED`` instead of running forever. Plain Python, clock injected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from safevla_node.actions import Action, ActionKind
from safevla_node.config import check_range, field
from safevla_node.safety.types import RobotState, TwistCommand

__all__ = [
    "EXECUTION_MODES",
    "ArmTrajectory",
    "MotionPrimitive",
    "PrimitiveConfig",
    "PrimitivePhase",
    "PrimitiveStep",
    "TrajectoryPoint",
    "wrap_angle",
]

#: Joint-state names an arm or gripper action moves, by the Action attribute holding its delta.
_ARM_JOINTS = {"lift_m": "joint_lift", "extension_m": "wrist_extension", "wrist_yaw_rad": "joint_wrist_yaw"}
GRIPPER_JOINT = "gripper_aperture"


def wrap_angle(angle: float) -> float:
    """``angle`` wrapped into [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class TrajectoryPoint:
    """One point of an arm trajectory: positions in the order of ``ArmTrajectory.joint_names``."""

    positions: tuple[float, ...]
    time_from_start: float


@dataclass(frozen=True)
class ArmTrajectory:
    """Joint-space trajectory (positions and timing only; m for prismatic, rad for revolute joints)."""

    joint_names: tuple[str, ...]
    points: tuple[TrajectoryPoint, ...]

    def final_targets(self) -> dict[str, float]:
        """Where the trajectory ends, by joint name (empty for a trajectory without points)."""
        if not self.points:
            return {}
        return dict(zip(self.joint_names, self.points[-1].positions))


#: How an allowed discrete action reaches the robot: ``continuous``, driven by the safety monitor as a motion
#: primitive on cmd_vel and the arm controller; ``discrete``, run whole by an executor that reports it
#: (AI2-THOR, the sim bridge's discrete mode).
EXECUTION_MODES = ("continuous", "discrete")


@dataclass(frozen=True)
class PrimitiveConfig:
    """Gains, speed limits and tolerances of the motion primitives."""

    linear_gain: float = field(1.5, "P gain from remaining distance (m) to forward speed (m/s), 1/s")
    angular_gain: float = field(2.0, "P gain from remaining yaw (rad) to turn rate (rad/s), 1/s")
    max_linear_speed: float = field(0.15, "forward/backward speed limit of base primitives (m/s)")
    min_linear_speed: float = field(0.02, "speed floor so the base does not creep asymptotically (m/s)")
    max_angular_speed: float = field(0.6, "turn-rate limit of base primitives (rad/s)")
    min_angular_speed: float = field(0.05, "turn-rate floor so rotations finish (rad/s)")
    position_tolerance: float = field(0.01, "a base move is done within this distance of its goal (m)")
    yaw_tolerance: float = field(0.02, "a rotation is done within this angle of its goal (rad)")
    joint_tolerance: float = field(0.01, "an arm move is done when every joint is this close (m or rad)")
    arm_move_duration: float = field(1.0, "time_from_start given to arm and gripper targets (s)")
    gripper_settle_time: float = field(1.5, "a gripper action is done after this long even if an object "
                                       "blocks the fingers from reaching their target (s)")
    gripper_closed: float = field(0.0, "gripper_aperture target of pickup (m)")
    gripper_open: float = field(0.1, "gripper_aperture target of dropoff (m)")
    timeout: float = field(5.0, "a primitive that has not finished after this long is aborted (s); a 0.2 m move "
                           "takes about 1.5 s, so a blocked base gives up well before the policy re-proposes")

    def __post_init__(self) -> None:
        positive = ("linear_gain", "angular_gain", "max_linear_speed", "max_angular_speed",
                    "position_tolerance", "yaw_tolerance", "joint_tolerance", "arm_move_duration", "timeout")
        for name in positive:
            check_range(name, getattr(self, name), 1e-6)
        check_range("min_linear_speed", self.min_linear_speed, 0.0, self.max_linear_speed)
        check_range("min_angular_speed", self.min_angular_speed, 0.0, self.max_angular_speed)
        check_range("gripper_settle_time", self.gripper_settle_time, 0.0)
        check_range("gripper_open", self.gripper_open, 0.0)
        check_range("gripper_closed", self.gripper_closed, 0.0, self.gripper_open)


class PrimitivePhase(str, Enum):
    """Life cycle reported on ``safevla/primitive_status``."""

    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    ABORTED = "aborted"


@dataclass(frozen=True)
class PrimitiveStep:
    """What a primitive wants this control tick.

    Attributes:
        twist: base velocity to command (zero for arm, gripper and episode actions).
        phase: RUNNING, or DONE / ABORTED once finished.
        reason: why it finished (empty while running).
    """

    twist: TwistCommand
    phase: PrimitivePhase
    reason: str = ""


def _saturate(value: float, gain: float, low: float, high: float) -> float:
    """P-control ``gain * value`` with magnitude clamped to [low, high], sign kept."""
    magnitude = min(high, max(low, abs(gain * value)))
    return math.copysign(magnitude, value)


class MotionPrimitive:
    """One discrete action executed closed-loop from the state at ``start_time``.

    ``joint_limits`` (low, high) by joint name clamps arm targets (the shield's limits, so both agree);
    a joint without limits is not clamped.

    Raises (from the constructor):
        ValueError: an arm or gripper action whose joint is missing from ``joints`` (the target cannot be
            made relative to an unknown position).
    """

    def __init__(
        self,
        action: Action,
        robot: RobotState,
        joints: Mapping[str, float],
        config: PrimitiveConfig,
        start_time: float,
        command_duration: float,
        joint_limits: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.action = action
        self.start_time = start_time
        self._config = config
        self._start = robot
        self._command_duration = command_duration
        self.targets = self._joint_targets(action, joints, config, joint_limits or {})

    @staticmethod
    def _joint_targets(action: Action, joints: Mapping[str, float], config: PrimitiveConfig,
                       limits: Mapping[str, tuple[float, float]]) -> dict[str, float]:
        if action.kind is ActionKind.GRIPPER:
            return {GRIPPER_JOINT: config.gripper_closed if action.code == "p" else config.gripper_open}
        if action.kind is not ActionKind.ARM:
            return {}
        targets = {}
        for attribute, joint in _ARM_JOINTS.items():
            delta = getattr(action, attribute)
            if delta == 0.0:
                continue
            if joint not in joints:
                raise ValueError(f"action {action.name!r} moves {joint!r}, which joint_states does not "
                                 f"report (reported: {sorted(joints)})")
            low, high = limits.get(joint, (-math.inf, math.inf))
            targets[joint] = min(high, max(low, joints[joint] + delta))
        return targets

    def arm_trajectory(self) -> ArmTrajectory | None:
        """The joint target to send when the primitive starts (None for base and episode actions)."""
        if not self.targets:
            return None
        names = tuple(sorted(self.targets))
        point = TrajectoryPoint(tuple(self.targets[n] for n in names), self._config.arm_move_duration)
        return ArmTrajectory(names, (point,))

    def step(self, now: float, robot: RobotState, joints: Mapping[str, float]) -> PrimitiveStep:
        """Advance the controller with the latest odometry and joint states."""
        zero = TwistCommand(0.0, 0.0, self._command_duration)
        kind = self.action.kind
        if kind is ActionKind.EPISODE:
            return PrimitiveStep(zero, PrimitivePhase.DONE, f"{self.action.name}: no motion")
        elapsed = now - self.start_time
        if kind is ActionKind.BASE:
            twist, remaining = self._base_control(robot)
        else:
            twist, remaining = zero, self._joint_error(joints)
        if remaining is None:
            return PrimitiveStep(zero, PrimitivePhase.DONE, f"{self.action.name}: goal reached")
        if kind is ActionKind.GRIPPER and elapsed >= self._config.gripper_settle_time:
            return PrimitiveStep(zero, PrimitivePhase.DONE, f"{self.action.name}: gripper settled")
        if elapsed > self._config.timeout:
            return PrimitiveStep(zero, PrimitivePhase.ABORTED,
                                 f"{self.action.name}: timeout after {self._config.timeout:g} s, {remaining}")
        return PrimitiveStep(twist, PrimitivePhase.RUNNING)

    def _base_control(self, robot: RobotState) -> tuple[TwistCommand, str | None]:
        """Velocity toward the goal and a description of the remaining error (None once within tolerance)."""
        cfg, start = self._config, self._start
        if self.action.forward_m != 0.0:
            heading = (math.cos(start.yaw), math.sin(start.yaw))
            travelled = (robot.x - start.x) * heading[0] + (robot.y - start.y) * heading[1]
            error = self.action.forward_m - travelled
            if abs(error) <= cfg.position_tolerance:
                return TwistCommand(0.0, 0.0, self._command_duration), None
            linear = _saturate(error, cfg.linear_gain, cfg.min_linear_speed, cfg.max_linear_speed)
            # Hold the start heading so a 0.2 m step stays straight.
            yaw_error = wrap_angle(start.yaw - robot.yaw)
            angular = max(-cfg.max_angular_speed, min(cfg.max_angular_speed, cfg.angular_gain * yaw_error))
            return TwistCommand(linear, angular, self._command_duration), f"{error:+.3f} m to go"
        error = wrap_angle(start.yaw + self.action.yaw_rad - robot.yaw)
        if abs(error) <= cfg.yaw_tolerance:
            return TwistCommand(0.0, 0.0, self._command_duration), None
        angular = _saturate(error, cfg.angular_gain, cfg.min_angular_speed, cfg.max_angular_speed)
        return TwistCommand(0.0, angular, self._command_duration), f"{error:+.3f} rad to go"

    def _joint_error(self, joints: Mapping[str, float]) -> str | None:
        """The joints still off target, or None once all are within tolerance."""
        off = {j: t - joints.get(j, math.nan) for j, t in self.targets.items()
               if j not in joints or abs(t - joints[j]) > self._config.joint_tolerance}
        if not off:
            return None
        return ", ".join(f"{j} {e:+.3f} to go" for j, e in sorted(off.items()))
