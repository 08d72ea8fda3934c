"""Refusal memory: a step-synchronous policy does not propose again what the shield refused at this pose.

The shield judges a proposal from the world and the robot's pose. When it refuses an action (STOP, or
REPLACE by another action) and the robot has not moved since, proposing the same action again gets the same
answer: a deterministic policy would stall on it until its step budget runs out (in evaluation) or forever
(on a robot: a deadlock the deadman only keeps safe). ``RefusalMemory`` remembers the refused actions at the
pose they were refused at and masks them, so the policy chooses its next best action instead; any motion
(base or arm) beyond the tolerances starts afresh, because then every action may be judged differently.

One implementation for every proposer: the evaluation adapters (``safevla_node.evaluation.policies``, pose
from the simulator's snapshot) and the policy node (``safevla_node.policy_runner``, pose from odometry and
joint states, refusals from the monitor's deciding ``safevla/primitive_status``). Plain Python and NumPy.

Protocol per step: ``mask(pose, mask)`` before choosing, ``proposed(action)`` once chosen, then exactly one of
``executed(action or None)`` (what ran after the shield; None: nothing ran) or ``discard()`` (the proposal was
never judged, e.g. a fail-safe refusal or a lost answer: nothing is learned about the action).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from safevla_node.actions import NUM_ACTIONS
from safevla_node.config import check_range, field
from safevla_node.safety.types import RobotState

__all__ = ["POSE_FIELDS", "PoseTolerance", "RefusalMemory", "robot_pose"]

#: The pose a refusal is keyed on, in this order: base x, y (m), yaw (rad), lift and arm extension (m).
POSE_FIELDS = ("x", "y", "yaw", "lift", "arm_extension")


def robot_pose(robot: RobotState) -> np.ndarray:
    """``robot``'s pose as ``RefusalMemory`` keys it (``POSE_FIELDS``)."""
    return np.array([float(getattr(robot, name)) for name in POSE_FIELDS])


@dataclass(frozen=True)
class PoseTolerance:
    """How far the robot may be from where a refusal happened for the refusal still to hold.

    A STOP leaves the robot where it was (within sensor noise); an executed action moves the base by at
    least a step (0.1 m / 30 deg) or a joint by at least 0.05 m, far beyond these.
    """

    position_m: float = field(0.01, "base position (m)")
    yaw_rad: float = field(0.01, "base heading (rad)")
    joint_m: float = field(0.005, "lift and arm extension (m)")

    def __post_init__(self) -> None:
        check_range("position_m", self.position_m, 0.0, 1.0)
        check_range("yaw_rad", self.yaw_rad, 0.0, math.pi)
        check_range("joint_m", self.joint_m, 0.0, 1.0)

    def vector(self) -> np.ndarray:
        """The tolerance per ``POSE_FIELDS`` entry."""
        return np.array([self.position_m, self.position_m, self.yaw_rad, self.joint_m, self.joint_m])


class RefusalMemory:
    """The actions the shield refused at the robot's current pose (see the module docstring)."""

    def __init__(self, tolerance: PoseTolerance = PoseTolerance()) -> None:
        self._tol = tolerance.vector()
        self._pose: np.ndarray | None = None  # pose of the last mask() call (the pending proposal's)
        self._proposed: int | None = None
        self._refused_pose: np.ndarray | None = None
        self._refused = np.zeros(NUM_ACTIONS, dtype=bool)

    def clear(self) -> None:
        """Forget everything (a new episode)."""
        self._pose = self._refused_pose = None
        self._proposed = None
        self._refused[:] = False

    @property
    def refused(self) -> tuple[int, ...]:
        """The action indices currently remembered as refused (at the last refusal's pose)."""
        return tuple(int(i) for i in np.flatnonzero(self._refused))

    def mask(self, pose: Sequence[float] | np.ndarray, mask: Sequence[bool] | np.ndarray | None = None
             ) -> np.ndarray | None:
        """``mask`` (True = allowed; None: all) without the actions refused at ``pose``; call before choosing.

        ``pose`` is (x, y, yaw, lift, arm_extension) (``POSE_FIELDS``). Returns None when nothing is masked
        (so an unmasked policy runs exactly as without a memory). When every allowed action would be
        refused the memory starts over: the world may have changed since.

        Raises:
            ValueError: ``pose`` is not 5 finite numbers, or ``mask`` not one bool per action.
        """
        here = np.asarray(pose, dtype=float)
        if here.shape != (len(POSE_FIELDS),) or not np.all(np.isfinite(here)):
            raise ValueError(f"pose {pose!r} must be {len(POSE_FIELDS)} finite numbers {POSE_FIELDS}")
        if mask is not None and np.shape(mask) != (NUM_ACTIONS,):
            raise ValueError(f"mask has shape {np.shape(mask)}, expected ({NUM_ACTIONS},): one bool per action")
        if self._refused_pose is None or not self._near(here, self._refused_pose):
            self._refused[:] = False
        self._pose = here
        allowed = np.ones(NUM_ACTIONS, dtype=bool) if mask is None else np.array(mask, dtype=bool)
        if not (allowed & ~self._refused).any():
            self._refused[:] = False
        if not self._refused.any():
            return None if mask is None else allowed
        return allowed & ~self._refused

    def _near(self, a: np.ndarray, b: np.ndarray) -> bool:
        delta = a - b
        delta[2] = (delta[2] + math.pi) % (2.0 * math.pi) - math.pi
        return bool(np.all(np.abs(delta) <= self._tol))

    def proposed(self, action_index: int) -> None:
        """``action_index`` was proposed at the pose of the last ``mask`` call."""
        self._proposed = int(action_index)

    def executed(self, action_index: int | None) -> None:
        """What ran after the shield (None: nothing ran); anything but the proposal marks the proposal
        refused at its pose."""
        if self._proposed is not None and action_index != self._proposed and self._pose is not None:
            self._refused_pose = self._pose
            self._refused[self._proposed] = True
        self._proposed = None

    def discard(self) -> None:
        """The proposal was never judged (nothing is learned about it)."""
        self._proposed = None
