"""The one simulator interface behind the bridge node, the evaluation harness and training.

A backend (embedded MuJoCo, AI2-THOR) holds one scene and one task. Commands are latched (``set_base_twist``,
``set_joint_targets``) and take effect when the caller advances time, so the same backend runs lock-step
(tests, evaluation, training: the caller decides when time moves) or real-time (the bridge paces ``advance``
against the wall clock). Costs come from ``safevla_node.safety`` and are never recomputed here: a backend
only produces ``WorldSnapshot``s and hands them to a ``StepCostEvaluator``.

Frames: odom is the robot's start pose, REP-103 (x forward, y left, z up); cameras follow REP-103 optical
conventions only in the messages the bridge publishes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from safevla_node.safety.types import StepCost, WorldSnapshot

__all__ = [
    "JOINT_NAMES",
    "check_dt",
    "check_twist",
    "float32_exact",
    "CameraFrame",
    "EpisodeStatus",
    "LaserScanData",
    "Observation",
    "SimBackend",
    "StepResult",
    "TaskKind",
    "TaskSpec",
]

#: Stretch joints the backends report and accept, with units: joint_lift (m), wrist_extension (m),
#: joint_wrist_yaw (rad), gripper_aperture (m), joint_head_pan (rad), joint_head_tilt (rad).
JOINT_NAMES: tuple[str, ...] = (
    "joint_lift",
    "wrist_extension",
    "joint_wrist_yaw",
    "gripper_aperture",
    "joint_head_pan",
    "joint_head_tilt",
)


def check_twist(linear_x: float, angular_z: float) -> None:
    """The check every backend's ``set_base_twist`` runs before anything reaches its physics.

    Raises:
        ValueError: a non-finite component.
    """
    for name, value in (("linear_x", linear_x), ("angular_z", angular_z)):
        if not math.isfinite(value):
            raise ValueError(f"twist {name}={value!r} is not finite; the command was dropped")


def check_dt(dt: float) -> None:
    """The check every backend's ``advance`` runs.

    Raises:
        ValueError: ``dt`` is negative or not finite.
    """
    if not math.isfinite(dt) or dt < 0.0:
        raise ValueError(f"dt={dt!r} must be a finite, non-negative number of seconds")


class TaskKind(str, Enum):
    """The three Safety-CHORES task families."""

    OBJECT_NAV = "objectnav"
    PICKUP = "pickup"
    FETCH = "fetch"


@dataclass(frozen=True)
class TaskSpec:
    """One task of an episode.

    Attributes:
        kind: task family.
        instruction: the natural-language goal given to the policy.
        target_type: object type to find or pick (e.g. "Apple").
        target_id: the target instance, or None when the task is infeasible (target absent).
        destination_type: where to place the object (Fetch only).
        max_steps: step budget (600 in the paper's evaluation).
    """

    kind: TaskKind
    instruction: str
    target_type: str
    target_id: str | None
    destination_type: str | None = None
    max_steps: int = 600

    @property
    def feasible(self) -> bool:
        """False for the extreme-failure variants whose target does not exist."""
        return self.target_id is not None


@dataclass(frozen=True)
class CameraFrame:
    """One camera image with its pinhole intrinsics (pixels).

    ``rgb`` is (H, W, 3) uint8; ``depth`` is (H, W) float32 metres or None if not rendered.
    ``pose_in_base`` is the camera's (x, y, z, roll, pitch, yaw) in base_link, REP-103 body axes.
    """

    rgb: np.ndarray
    depth: np.ndarray | None
    fx: float
    fy: float
    cx: float
    cy: float
    pose_in_base: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def float32_exact(value: float) -> float:
    """``value`` rounded to the nearest float32, the precision of sensor_msgs/LaserScan's fields."""
    return float(np.float32(value))


@dataclass(frozen=True)
class LaserScanData:
    """A planar scan, counter-clockwise from ``angle_min`` (rad), ranges in m (inf: no return).

    The fields hold float32 values, as sensor_msgs/LaserScan carries them over DDS, so a scan is the same
    numbers in-process and after a trip through ROS. The rounding on the wire alone (angle_min -pi moves by
    9e-8 rad) put hits of some beams into other obstacle cells: in the first decision of an easy home's
    PickUp the in-process evaluation remembered 257 cells where the safety monitor had 243.
    """

    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray

    def __post_init__(self) -> None:
        for name in ("angle_min", "angle_increment", "range_min", "range_max"):
            object.__setattr__(self, name, float32_exact(getattr(self, name)))
        object.__setattr__(self, "ranges", np.asarray(self.ranges, dtype=np.float32))


@dataclass(frozen=True)
class Observation:
    """Everything a backend reports at one instant.

    Attributes:
        time: simulation time (s) since reset.
        nav_camera, manip_camera: the two SafeVLA cameras (None when rendering was skipped).
        base_velocity: (linear_x m/s, angular_z rad/s) in base_link.
        joints: positions by name, see JOINT_NAMES.
        scan: the base lidar.
        snapshot: privileged ground truth (objects, robot, last collision), input of the step cost.
    """

    time: float
    nav_camera: CameraFrame | None
    manip_camera: CameraFrame | None
    base_velocity: tuple[float, float]
    joints: Mapping[str, float]
    scan: LaserScanData
    snapshot: WorldSnapshot


@dataclass(frozen=True)
class EpisodeStatus:
    """Progress of the current episode; costs are cumulative over committed steps."""

    task: TaskSpec
    steps: int
    success: bool
    done: bool
    cumulative_cost: StepCost = field(default_factory=StepCost)
    path_length: float = 0.0
    expert_path_length: float | None = None


@dataclass(frozen=True)
class StepResult:
    """Outcome of one discrete action."""

    observation: Observation
    cost: StepCost
    status: EpisodeStatus


class SimBackend(ABC):
    """A simulator the stack can drive. See the module docstring for the time model."""

    #: Registry name ("mujoco", "ai2thor").
    name: str = ""

    @abstractmethod
    def reset(self, seed: int, task: TaskKind, *, infeasible: bool = False) -> Observation:
        """Load the scene of ``seed`` with a task of ``task`` (target absent if ``infeasible``)."""

    @abstractmethod
    def set_base_twist(self, linear_x: float, angular_z: float) -> None:
        """Latch a base velocity (m/s, rad/s); it holds until changed.

        Raises:
            ValueError: a non-finite value (it never reaches the physics).
        """

    @abstractmethod
    def set_joint_targets(self, targets: Mapping[str, float]) -> None:
        """Latch absolute joint targets (JOINT_NAMES units); unknown joints or out-of-range targets raise.

        Raises:
            ValueError: unknown joint, non-finite or out-of-range target.
        """

    @abstractmethod
    def pickup(self) -> bool:
        """Grasp the graspable object nearest the gripper; True if something is now held."""

    @abstractmethod
    def release(self) -> bool:
        """Open the gripper and let go; True if something was held."""

    @abstractmethod
    def advance(self, dt: float) -> None:
        """Move simulated time forward by ``dt`` seconds under the latched commands."""

    @abstractmethod
    def observe(self, render: bool = True) -> Observation:
        """The current observation; cameras are None when ``render`` is False."""

    @abstractmethod
    def commit_step(self) -> StepCost:
        """Close one cost step: the Safety-CHORES step cost since the previous commit (or reset)."""

    @abstractmethod
    def execute_action(self, action_index: int, render: bool = True) -> StepResult:
        """Run one discrete SafeVLA action to completion, commit its step and report."""

    @abstractmethod
    def status(self) -> EpisodeStatus:
        """Progress of the current episode."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release simulator resources."""
