"""Value types shared by the safety core, the simulators, bag audit and evaluation.

Frames and units follow REP-103: x forward, y left, z up, metres, radians (angles in degrees only where a
field name says ``_deg``, to stay comparable with AI2-THOR metadata). Poses are in the odom (or world)
frame unless a field says otherwise. Everything is immutable so snapshots can be compared across steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

import numpy as np

__all__ = [
    "COST_CATEGORIES",
    "ArmCommand",
    "Category",
    "CollisionEvent",
    "Command",
    "DiscreteCommand",
    "ObjectState",
    "RobotState",
    "StepCost",
    "TwistCommand",
    "Verdict",
    "VerdictKind",
    "WorldEstimate",
    "WorldSnapshot",
    "strictest",
]


class Category(str, Enum):
    """Why something is unsafe: the five Safety-CHORES cost categories, plus shield-only reasons."""

    CORNER = "corner"
    BLIND_SPOT = "blind_spot"
    FRAGILE = "fragile"
    CRITICAL = "critical"
    DANGER = "danger"
    COLLISION = "collision"  # predicted contact with a currently visible obstacle
    FAULT = "fault"  # stale, missing or malformed input, e-stop, deadman


#: The categories that carry a step cost, in the paper's order.
COST_CATEGORIES: tuple[Category, ...] = (
    Category.CORNER,
    Category.BLIND_SPOT,
    Category.FRAGILE,
    Category.CRITICAL,
    Category.DANGER,
)


@dataclass(frozen=True)
class ObjectState:
    """One object of the scene, as the simulator (privileged) or perception reports it.

    Attributes:
        object_id: unique id (AI2-THOR ``objectId``).
        name: instance name (AI2-THOR ``name``); the original matches dangerous equipment on it.
        object_type: class name (AI2-THOR ``objectType``, e.g. "Knife", "Bowl").
        position: centre (x, y, z) in m.
        rotation_deg: Euler angles (roll, pitch, yaw) in degrees.
        size: axis-aligned bounding-box extents (dx, dy, dz) in m.
        visible: seen by a robot camera at this instant.
        held: held by the gripper.
        unstable: rests where a small push drops it (near a ledge): a critical point.
        static: part of the building (floor, wall, door, window, ceiling) or fixed furniture.
    """

    object_id: str
    object_type: str
    position: tuple[float, float, float]
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    size: tuple[float, float, float] = (0.1, 0.1, 0.1)
    name: str = ""
    visible: bool = False
    held: bool = False
    unstable: bool = False
    static: bool = False


@dataclass(frozen=True)
class RobotState:
    """Robot configuration: base pose plus Stretch joints.

    Attributes:
        x, y, yaw: base_link pose in odom (m, m, rad).
        footprint_radius: radius of the base's circular footprint (m); Stretch is ~0.17 m x 0.34 m.
        lift: lift height of the arm carriage above the floor (m).
        arm_extension: telescoping arm extension beyond its retracted length (m).
        wrist_yaw: wrist yaw (rad).
        gripper_aperture: gripper opening (m); 0 is closed.
        held_object_id: id of the held object, or None.
    """

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    footprint_radius: float = 0.2
    lift: float = 0.6
    arm_extension: float = 0.0
    wrist_yaw: float = 0.0
    gripper_aperture: float = 0.0
    held_object_id: str | None = None

    @property
    def position(self) -> tuple[float, float]:
        """Base position (x, y) in odom."""
        return (self.x, self.y)


@dataclass(frozen=True)
class CollisionEvent:
    """The robot touched something during the last step.

    Attributes:
        object_id: what was hit, or None for an unidentified obstacle.
        message: the simulator's text (AI2-THOR errorMessage, e.g. "Collided with static sim object: 'Wall_3'").
    """

    object_id: str | None
    message: str = ""


@dataclass(frozen=True)
class WorldSnapshot:
    """Ground truth of one instant, as a simulator knows it; the input of the step cost.

    Attributes:
        time: simulation time (s).
        robot: robot state.
        objects: every object, keyed by object_id.
        collision: collision of the step that led here, or None.
        seen_ids: ids seen by any robot camera at this instant (AI2-THOR: GetVisibleObjects within 4 m
            plus objects flagged visible).
        reachable_xy: (N, 2) floor points the base can reach (m), for the corner predicate; may be empty.
    """

    time: float
    robot: RobotState
    objects: Mapping[str, ObjectState]
    collision: CollisionEvent | None = None
    seen_ids: frozenset[str] = frozenset()
    reachable_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @classmethod
    def of(cls, time: float, robot: RobotState, objects: Iterable[ObjectState], **kwargs: object) -> WorldSnapshot:
        """Build a snapshot from a list of objects."""
        by_id = {o.object_id: o for o in objects}
        return cls(time=time, robot=robot, objects=by_id, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StepCost:
    """Cost of one step: each category 0 or 1, so the total is 0..5.

    ``details`` names the objects or the reason behind each non-zero category, for reports.
    """

    corner: int = 0
    blind_spot: int = 0
    fragile: int = 0
    critical: int = 0
    danger: int = 0
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Sum over the five categories."""
        return self.corner + self.blind_spot + self.fragile + self.critical + self.danger

    def by_category(self) -> dict[Category, int]:
        """The cost of each category, keyed by Category."""
        return {c: getattr(self, c.value) for c in COST_CATEGORIES}


# --- Commands the shield judges -------------------------------------------------------------------------


@dataclass(frozen=True)
class TwistCommand:
    """A base velocity held for ``duration`` seconds (m/s, rad/s in base_link)."""

    linear_x: float
    angular_z: float
    duration: float = 0.5


@dataclass(frozen=True)
class DiscreteCommand:
    """A SafeVLA discrete action (index into ``safevla_node.actions.ACTIONS``).

    ``probabilities`` is the policy's distribution over all actions when known; the shield then replaces
    an unsafe action by the most probable safe one.
    """

    action_index: int
    probabilities: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ArmCommand:
    """Absolute joint targets by joint name (``joint_lift`` m, ``wrist_extension`` m, ``joint_wrist_yaw`` rad,
    ``gripper_aperture`` m); joints not named keep their position."""

    targets: Mapping[str, float]


Command = TwistCommand | DiscreteCommand | ArmCommand


@dataclass(frozen=True)
class WorldEstimate:
    """What the robot believes at run time: the input of the predictive shield.

    Attributes:
        robot: current robot state from odometry and joint states.
        obstacle_xy: (N, 2) obstacle points in odom (m), from the scan, depth and the obstacle memory.
        obstacle_visible: (N,) True where the point is currently observed; False where only remembered.
        objects: labelled objects (from ``safevla/objects``).
        target_object_id: ``object_id`` of the task's target (the object to find, pick up or fetch), or None
            when there is none or it is unknown. The shield treats approaching and grasping it as intended
            manipulation (``ShieldConfig.exempt_target``); its neighbours keep their margins. The evaluation
            harness fills it from the task; on the robot the monitor node is meant to take it from a
            parameter or topic (not wired yet).
    """

    robot: RobotState
    obstacle_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    obstacle_visible: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=bool))
    objects: tuple[ObjectState, ...] = ()
    target_object_id: str | None = None


# --- Verdicts --------------------------------------------------------------------------------------------


class VerdictKind(IntEnum):
    """Ordered by strictness: when several rules fire, the largest wins."""

    ALLOW = 0
    LIMIT = 1  # scale speed, keep curvature
    REPLACE = 2  # execute ``replacement`` instead
    STOP = 3


@dataclass(frozen=True)
class Verdict:
    """The shield's (or monitor's) decision on one command.

    Attributes:
        kind: allow / limit / replace / stop.
        category: the rule's category (None for allow).
        reason: one human-readable line naming the rule and the object or input behind it.
        scale: speed factor in [0, 1] for LIMIT (1 otherwise; 0 for STOP).
        replacement: action index to execute instead, for REPLACE.
        risk: predicted risk per category in [0, 1] (1 = the rule fires).
    """

    kind: VerdictKind
    category: Category | None = None
    reason: str = ""
    scale: float = 1.0
    replacement: int | None = None
    risk: Mapping[Category, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (0.0 <= self.scale <= 1.0) or math.isnan(self.scale):
            raise ValueError(f"Verdict.scale must be in [0, 1], got {self.scale!r}")
        if self.kind is VerdictKind.REPLACE and self.replacement is None:
            raise ValueError("a REPLACE verdict needs a replacement action")

    @classmethod
    def allow(cls, risk: Mapping[Category, float] | None = None) -> Verdict:
        """Nothing fired."""
        return cls(VerdictKind.ALLOW, risk=dict(risk or {}))

    @classmethod
    def stop(cls, category: Category, reason: str, risk: Mapping[Category, float] | None = None) -> Verdict:
        """Stop, naming the rule."""
        return cls(VerdictKind.STOP, category, reason, scale=0.0, risk=dict(risk or {}))


def strictest(verdicts: Iterable[Verdict]) -> Verdict:
    """The most restrictive verdict (ties: the smallest speed scale); risks are merged by maximum.

    An empty input allows.
    """
    chosen: Verdict | None = None
    risk: dict[Category, float] = {}
    for v in verdicts:
        for cat, r in v.risk.items():
            risk[cat] = max(risk.get(cat, 0.0), r)
        if chosen is None or (v.kind, -v.scale) > (chosen.kind, -chosen.scale):
            chosen = v
    if chosen is None:
        return Verdict.allow()
    return Verdict(chosen.kind, chosen.category, chosen.reason, chosen.scale, chosen.replacement, risk)
