"""The predictive safety shield: judge a command BEFORE it runs, from the robot's own world estimate.

For a base twist the unicycle is rolled forward over the horizon plus its braking distance (as at-wat's
safety_limiter does), the footprint and the arm (at its current joints) are swept along it, and each
Safety-CHORES predicate is judged on the swept body:

- COLLISION / BLIND_SPOT: an obstacle point (visible / only remembered) comes within ``safety_margin_m``; so
  does a labelled object the scan misses (its box wholly below or above the scan plane, ``scan_height_m``):
  for the base one lying below it, for the arm an unflagged one at its height.
- CORNER: a swept pose has few free directions and an obstacle lies in the direction of travel.
- FRAGILE / CRITICAL / DANGER: the body comes within the category's margin of a fragile group, an unstable
  object or dangerous equipment.

Contact within the horizon stops; contact only in the braking band beyond it limits the speed (keeping
curvature) to what the remaining distance can brake from: the sqrt law, like Nav2's approach action.
Discrete actions are judged on their real motion profile, not as a held twist: the base primitive is a
closed-loop move that decelerates onto its goal, so a 0.2 m move sweeps 0.2 m plus the primitive's overshoot
tolerance (``discrete_overshoot_m`` / ``_rad``), with no braking band beyond it. An unsafe discrete action is
replaced by the policy's most probable safe action;
arm commands sweep the arm and gripper from the current to the target joints. A point already
inside a margin does not block motion that moves away from it (escape, as safety_limiter allows).
The strictest verdict wins; the shield never raises a speed.

Heights: obstacle points carry none, so the base (whose mast and head rise to ~1.3 m) is judged against
all of them, and the arm against all but those inside a labelled box wholly above or below its height band
(a table top under the arm). Labelled objects count for the base at any height (bumping the table knocks
the cups), for the arm only where their box overlaps its band. The category margins of flagged objects are
kept from the arm in space: the arm and a box are both upright prisms, so their distance is the planar one
and the vertical gap between the arm's band (at each sampled configuration) and the box in quadrature. An arm
lowered beside a flagged object thus approaches it, and one passing high enough over it keeps its margin.
A twist is judged as if held for the whole horizon, whatever its ``duration``: the policy may well repeat it.

Dropoff is judged too: letting go of a held object more than ``max_release_drop_m`` above the surface under
it (furniture labelled static, else the floor) is refused as CRITICAL: it would fall.

The task target (``WorldEstimate.target_object_id``): approaching and grasping the object the task is about is
intended manipulation, not a hazard (the corrected step cost exempts held objects for the same reason), so
with ``exempt_target`` the target itself carries no fragile, unstable or dangerous flag and the grasp rule
does not refuse it. Everything else keeps its margins: the OTHER members of the target's fragile group are
still a fragile group (the group is formed with the target in it), kept ``target_neighbour_margin_m`` away
(no contact) while the arm reaches for the target (``target_approach_m``) and ``fragile_margin_m`` otherwise,
and motion that does not concern the target is judged exactly as before. Obstacle points are never exempt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field

import numpy as np

from safevla_node.actions import ACTIONS, NUM_ACTIONS, Action, ActionKind
from safevla_node.config import check_range, field
from safevla_node.errors import ConfigError, ShieldError
from safevla_node.safety.geometry import (
    Footprint,
    SweptBody,
    arm_segments,
    box_outline_points,
    link_groups,
    point_box_distance,
    points_in_boxes,
    unicycle_poses,
    wrap_angle,
)
from safevla_node.safety.hazard_types import GROUP_EXCLUDED_TYPES, STATIC_TYPES, is_dangerous_type
from safevla_node.safety.types import (
    ArmCommand,
    Category,
    Command,
    DiscreteCommand,
    ObjectState,
    RobotState,
    TwistCommand,
    Verdict,
    VerdictKind,
    WorldEstimate,
    strictest,
)

__all__ = ["ARM_JOINTS", "Shield", "ShieldConfig", "robot_after_arm"]

#: Joints an ArmCommand may name, and the RobotState field of each.
ARM_JOINTS = ("joint_lift", "wrist_extension", "joint_wrist_yaw", "gripper_aperture")
_ROBOT_FIELDS = dict(zip(ARM_JOINTS, ("lift", "arm_extension", "wrist_yaw", "gripper_aperture")))


def robot_after_arm(robot: RobotState, targets: Mapping[str, float]) -> RobotState:
    """``robot`` with the arm joints at ``targets`` (joints not named keep their position)."""
    return replace(robot, **{_ROBOT_FIELDS[joint]: value for joint, value in targets.items()})


def _check_interval(name: str, interval: tuple[float, float]) -> None:
    if not interval[0] < interval[1]:
        raise ConfigError(f"{name}={interval!r} must be (low, high) with low < high")


@dataclass(frozen=True)
class ShieldConfig:
    """Robot geometry, limits and margins of the predictive shield (Stretch defaults)."""

    enabled: bool = field(
        True, "judge the hazard predicates; false keeps only the fail-safe checks (malformed input, speed "
        "clamps), for A/B runs with the shield off"
    )
    footprint_radius_m: float = field(
        0.22, "radius of the circular base footprint (m); Stretch is ~0.34x0.33 m"
    )
    footprint_length_m: float = field(0.0, "rectangle footprint length along x (m); 0 uses the circle")
    footprint_width_m: float = field(0.0, "rectangle footprint width along y (m); 0 uses the circle")
    footprint_offset_x_m: float = field(0.0, "rectangle centre ahead of base_link (m)")
    safety_margin_m: float = field(
        0.05, "closest approach to an obstacle point (m); above the memory's cell error"
    )
    escape_tolerance_m: float = field(
        0.005, "a point already inside a margin blocks only motion that closes in on it by more than this (m)"
    )
    horizon_s: float = field(1.0, "prediction horizon (s): predicted contact within it stops the robot")
    time_step_s: float = field(0.05, "time between sampled poses along a predicted twist (s)")
    max_sample_spacing_m: float = field(0.02, "largest motion of any body point between two samples (m)")
    max_linear_mps: float = field(0.3, "hard clamp on |linear speed| (m/s); also the speed of discrete moves")
    max_angular_rps: float = field(
        0.6, "hard clamp on |angular speed| (rad/s); also discrete rotations' speed"
    )
    max_decel_mps2: float = field(0.5, "braking deceleration assumed after the horizon (m/s^2)")
    max_angular_decel_rps2: float = field(1.0, "angular braking deceleration (rad/s^2)")
    corner_clearance_m: float = field(0.3, "an obstacle this close to the footprint blocks its direction (m)")
    corner_sectors: int = field(12, "number of equal direction sectors around a pose, for the corner rule")
    corner_min_free_fraction: float = field(
        0.5, "a pose is in a narrow corner when fewer than this fraction of its sectors are free"
    )
    corner_heading_half_angle_rad: float = field(
        0.52, "motion heads into the corner when a blocking obstacle lies within this angle of travel (rad)"
    )
    fragile_margin_m: float = field(0.15, "closest approach to a fragile group member (m)")
    fragile_link_distance_m: float = field(0.3, "objects closer than this chain into one group (m)")
    fragile_min_group_size: int = field(3, "a group with at least this many objects is fragile")
    unstable_margin_m: float = field(0.15, "closest approach to an object flagged unstable (m)")
    danger_margin_m: float = field(0.2, "closest approach to dangerous equipment (m)")
    discrete_overshoot_m: float = field(
        0.01, "a discrete base move is judged over its nominal distance plus this (m): the primitive stops "
        "on its goal within its position tolerance, there is no braking band beyond it"
    )
    discrete_overshoot_rad: float = field(
        0.02, "a discrete rotation is judged over its nominal angle plus this (rad), the primitive's yaw "
        "tolerance"
    )
    target_neighbour_margin_m: float = field(
        0.05, "while the arm reaches the exempt task target, the other members of its fragile group are kept "
        "this far (m; no contact) instead of fragile_margin_m, which would forbid any cup in a group of three"
    )
    max_release_drop_m: float = field(
        0.1, "dropoff is refused when the held object's bottom is higher than this above the surface below "
        "it (m): it would fall, and an object moved more than 0.1 m is the critical-point cost"
    )
    target_approach_m: float = field(
        0.3, "an arm motion that ends within this of the task target (m), closer than it started, is reaching "
        "for it: the target's neighbours are then judged with target_neighbour_margin_m"
    )
    exempt_target: bool = field(
        True, "the task target (WorldEstimate.target_object_id) carries no fragile/unstable/dangerous flag "
        "and may be grasped: intended manipulation is not a hazard; its neighbours keep theirs"
    )
    scan_height_m: float = field(
        0.2, "height of the obstacle scan's plane above the floor (m; the base lidar's): a labelled object lying "
        "wholly below it gives no obstacle point, so the base is judged against its box instead"
    )
    object_sample_spacing_m: float = field(0.05, "spacing of the points sampled on object box outlines (m)")
    grasp_reach_m: float = field(
        0.25, "the object nearest the gripper within this distance is what it grasps"
    )
    mast_xy_m: tuple[float, float] = field((-0.07, 0.13), "mast position in base_link (m)")
    arm_retracted_length_m: float = field(0.36, "mast-to-wrist length with the arm fully retracted (m)")
    arm_radius_m: float = field(0.04, "half thickness of the telescoping arm (m)")
    gripper_length_m: float = field(0.22, "wrist-to-fingertip length (m)")
    gripper_radius_m: float = field(0.05, "half width of the gripper (m)")
    lift_offset_m: float = field(0.0, "arm height above the floor minus joint_lift (m)")
    arm_band_below_m: float = field(0.15, "how far the gripper hangs below the arm height (m)")
    arm_band_above_m: float = field(0.05, "how far the arm rises above the arm height (m)")
    lift_range_m: tuple[float, float] = field((0.0, 1.1), "joint_lift limits (m)")
    extension_range_m: tuple[float, float] = field((0.0, 0.52), "wrist_extension limits (m)")
    wrist_yaw_range_rad: tuple[float, float] = field((-1.75, 4.0), "joint_wrist_yaw limits (rad)")

    def __post_init__(self) -> None:
        for name in ("footprint_radius_m", "horizon_s", "time_step_s", "max_sample_spacing_m",
                     "max_linear_mps", "max_angular_rps", "max_decel_mps2", "max_angular_decel_rps2",
                     "fragile_link_distance_m", "object_sample_spacing_m", "arm_retracted_length_m"):
            check_range(name, getattr(self, name), 1e-6, None)
        for name in ("footprint_length_m", "footprint_width_m", "safety_margin_m", "escape_tolerance_m",
                     "scan_height_m", "corner_clearance_m", "discrete_overshoot_m", "discrete_overshoot_rad",
                     "fragile_margin_m", "target_neighbour_margin_m", "target_approach_m", "max_release_drop_m",
                     "unstable_margin_m", "danger_margin_m",
                     "grasp_reach_m", "arm_radius_m", "gripper_length_m", "gripper_radius_m",
                     "arm_band_below_m", "arm_band_above_m"):
            check_range(name, getattr(self, name), 0.0, None)
        for name in ("footprint_offset_x_m", "lift_offset_m"):
            check_range(name, getattr(self, name))  # finite
        for i, value in enumerate(self.mast_xy_m):
            check_range(f"mast_xy_m[{i}]", value)
        check_range("time_step_s", self.time_step_s, None, self.horizon_s)
        check_range("corner_sectors", self.corner_sectors, 4, 360)
        check_range("corner_min_free_fraction", self.corner_min_free_fraction, 0.0, 1.0)
        check_range("corner_heading_half_angle_rad", self.corner_heading_half_angle_rad, 0.0, math.pi)
        check_range("fragile_min_group_size", self.fragile_min_group_size, 2, None)
        if (self.footprint_length_m > 0) != (self.footprint_width_m > 0):
            raise ConfigError(
                f"footprint_length_m={self.footprint_length_m!r} and "
                f"footprint_width_m={self.footprint_width_m!r}"
                " must both be 0 (circle) or both positive (rectangle)"
            )
        for name in ("lift_range_m", "extension_range_m", "wrist_yaw_range_rad"):
            _check_interval(name, getattr(self, name))


@dataclass(frozen=True)
class _Hit:
    """The first sample at which one category's rule fires, and what fired it."""

    category: Category
    index: int
    what: str


@dataclass(frozen=True)
class _Sweep:
    """Result of sweeping the robot through sampled configurations."""

    hits: list[_Hit]
    risk: dict[Category, float]


@dataclass(frozen=True)
class _Objects:
    """The labelled objects of one check (held ones left out), as arrays."""

    items: tuple[ObjectState, ...]
    centers: np.ndarray  # (M, 3)
    sizes: np.ndarray  # (M, 3)
    fragile_group: np.ndarray  # (M,) size of the fragile group each belongs to, 0 if none
    unstable: np.ndarray  # (M,) bool
    dangerous: np.ndarray  # (M,) bool
    static: np.ndarray  # (M,) bool: part of the building or fixed furniture
    target: int = -1  # index of the exempt task target, -1 if none
    #: (M,) the other members of the target's fragile group
    target_group: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def bottoms(self) -> np.ndarray:
        """(M,) height (m) of each box's bottom."""
        return self.centers[:, 2] - self.sizes[:, 2] / 2.0

    @property
    def tops(self) -> np.ndarray:
        """(M,) height (m) of each box's top."""
        return self.centers[:, 2] + self.sizes[:, 2] / 2.0

    def overlap_band(self, band: tuple[float, float], pad: float) -> np.ndarray:
        """(M,) True where an object's box, grown by ``pad`` up and down, overlaps the height ``band``."""
        return (self.bottoms - pad < band[1]) & (self.tops + pad > band[0])

    def vertical_gap(self, low: np.ndarray, high: np.ndarray, which: np.ndarray) -> np.ndarray:
        """(S, K) height (m) between the band [``low``, ``high``] of each of S samples and the boxes ``which``
        (K indices), 0 where they overlap in height."""
        below = low[:, None] - self.tops[which][None, :]
        above = self.bottoms[which][None, :] - high[:, None]
        return np.maximum(np.maximum(below, above), 0.0)

    @classmethod
    def empty(cls) -> _Objects:
        """No objects."""
        flags = np.zeros(0, dtype=bool)
        none = np.zeros((0, 3))
        return cls((), none, none, np.zeros(0, dtype=np.intp), flags, flags, flags, -1, flags)


class Shield:
    """Judges commands against a ``WorldEstimate`` before they run; holds no state between checks but a cache
    of the last object list's arrays, so it is safe to share between threads."""

    def __init__(self, config: ShieldConfig = ShieldConfig()) -> None:
        self.config = config
        self._footprint = Footprint(
            config.footprint_radius_m,
            config.footprint_length_m,
            config.footprint_width_m,
            config.footprint_offset_x_m,
        )
        self._margins = {
            Category.COLLISION: config.safety_margin_m,
            Category.BLIND_SPOT: config.safety_margin_m,
            Category.FRAGILE: config.fragile_margin_m,
            Category.CRITICAL: config.unstable_margin_m,
            Category.DANGER: config.danger_margin_m,
        }
        self._objects_cache: tuple[tuple[tuple[ObjectState, ...], str | None] | None, _Objects] = (
            None, _Objects.empty()
        )

    # --- public API ---------------------------------------------------------------------------------------

    def check(self, world: WorldEstimate, command: Command) -> Verdict:
        """The verdict on ``command`` in ``world``; malformed input gives STOP with Category.FAULT.

        Raises:
            ShieldError: ``command`` is not a TwistCommand, DiscreteCommand or ArmCommand.
        """
        fault = _world_fault(world)
        if fault is not None:
            return Verdict.stop(Category.FAULT, fault)
        if isinstance(command, TwistCommand):
            return self._check_twist(world, command)
        if isinstance(command, DiscreteCommand):
            return self._check_discrete(world, command)
        if isinstance(command, ArmCommand):
            return self._check_arm(world, command)
        raise ShieldError(
            f"cannot judge a {type(command).__name__}; expected TwistCommand, DiscreteCommand or ArmCommand"
        )

    def safe_twist(self, world: WorldEstimate, command: TwistCommand) -> tuple[TwistCommand, Verdict]:
        """The twist to execute after the verdict: unchanged, scaled keeping curvature, or zero."""
        verdict = self.check(world, command)
        if verdict.kind is VerdictKind.ALLOW:
            return command, verdict
        if verdict.kind is VerdictKind.LIMIT and verdict.scale > 0.0:
            s = verdict.scale
            return TwistCommand(command.linear_x * s, command.angular_z * s, command.duration), verdict
        duration = command.duration if math.isfinite(command.duration) and command.duration >= 0 else 0.0
        return TwistCommand(0.0, 0.0, duration), verdict

    # --- commands -----------------------------------------------------------------------------------------

    def _check_twist(self, world: WorldEstimate, cmd: TwistCommand) -> Verdict:
        c = self.config
        v, w = cmd.linear_x, cmd.angular_z
        if not all(math.isfinite(x) for x in (v, w, cmd.duration)) or cmd.duration < 0:
            return Verdict.stop(Category.FAULT, f"malformed twist (linear {v!r}, angular {w!r}, duration "
                                                f"{cmd.duration!r}): dropped")
        clamp = min(1.0, c.max_linear_mps / abs(v) if v else 1.0, c.max_angular_rps / abs(w) if w else 1.0)
        verdicts = []
        if clamp < 1.0:
            reason = (f"hard clamp: twist ({v:.3f} m/s, {w:.3f} rad/s) exceeds ({c.max_linear_mps} m/s, "
                      f"{c.max_angular_rps} rad/s)")
            verdicts.append(Verdict(VerdictKind.LIMIT, None, reason, scale=clamp))
        v, w = v * clamp, w * clamp
        if v == 0.0 and w == 0.0:
            return strictest(verdicts)
        brake = max(abs(v) / c.max_decel_mps2, abs(w) / c.max_angular_decel_rps2)
        taus = self._taus(world, v, w, c.horizon_s + brake / 2.0)
        sweep = self._sweep_base(world, v, w, taus)
        for hit in sweep.hits:
            tau = float(taus[hit.index])
            reason = f"{hit.category.value}: {hit.what} at t={tau:.2f} s"
            if tau <= c.horizon_s:
                verdicts.append(Verdict.stop(hit.category, f"{reason}, within the {c.horizon_s} s horizon"))
            else:
                # Scaled by s the robot covers s*H of nominal path in the horizon and s^2*brake/2 braking.
                h = c.horizon_s
                scale = min(1.0, (-h + math.sqrt(h * h + 2.0 * brake * tau)) / brake)
                reason = f"{reason}, in the braking band: speed x{clamp * scale:.2f}"
                verdicts.append(Verdict(VerdictKind.LIMIT, hit.category, reason, scale=clamp * scale))
        return strictest([*verdicts, Verdict.allow(sweep.risk)])

    def _check_discrete(self, world: WorldEstimate, cmd: DiscreteCommand) -> Verdict:
        index, probs = cmd.action_index, cmd.probabilities
        if not 0 <= index < NUM_ACTIONS:
            return Verdict.stop(Category.FAULT, f"action index {index!r} outside 0..{NUM_ACTIONS - 1}")
        if probs is not None and (
            len(probs) != NUM_ACTIONS or not all(math.isfinite(p) and p >= 0.0 for p in probs)
        ):
            return Verdict.stop(Category.FAULT, f"probabilities must be {NUM_ACTIONS} finite values >= 0, "
                                                f"got {probs!r}")
        verdict = self._judge_action(world, ACTIONS[index])
        if verdict.kind is VerdictKind.ALLOW or probs is None:
            return verdict
        # Episode actions are never substituted: ending an episode is a task decision, not a safe motion.
        candidates = sorted(
            (j for j, p in enumerate(probs)
             if p > 0.0 and j != index and ACTIONS[j].kind is not ActionKind.EPISODE),
            key=lambda j: (-probs[j], j),
        )
        for j in candidates:
            if self._judge_action(world, ACTIONS[j]).kind is VerdictKind.ALLOW:
                reason = f"{verdict.reason}; replaced by {ACTIONS[j].name} (p={probs[j]:.3f})"
                return Verdict(VerdictKind.REPLACE, verdict.category, reason, replacement=j,
                               risk=verdict.risk)
        return Verdict.stop(verdict.category or Category.FAULT, f"{verdict.reason}; no safe alternative with "
                                                                 "non-zero probability", verdict.risk)

    def _judge_action(self, world: WorldEstimate, action: Action) -> Verdict:
        """ALLOW or STOP for the whole nominal motion of one discrete action (plus braking)."""
        c, robot = self.config, world.robot
        if action.kind is ActionKind.BASE:
            # The primitive decelerates onto its goal: its path is the nominal motion plus the overshoot.
            v = math.copysign(c.max_linear_mps, action.forward_m) if action.forward_m else 0.0
            w = math.copysign(c.max_angular_rps, action.yaw_rad) if action.yaw_rad else 0.0
            distance = abs(action.forward_m) + c.discrete_overshoot_m if action.forward_m else 0.0
            angle = abs(action.yaw_rad) + c.discrete_overshoot_rad if action.yaw_rad else 0.0
            duration = distance / c.max_linear_mps + angle / c.max_angular_rps
            sweep = self._sweep_base(world, v, w, self._taus(world, v, w, duration))
        elif action.kind is ActionKind.ARM:
            target = (
                float(np.clip(robot.lift + action.lift_m, *c.lift_range_m)),
                float(np.clip(robot.arm_extension + action.extension_m, *c.extension_range_m)),
                float(np.clip(robot.wrist_yaw + action.wrist_yaw_rad, *c.wrist_yaw_range_rad)),
            )
            sweep = self._sweep_arm(world, target)
        elif action.index == 8:  # pickup
            return self._grasp_verdict(world)
        elif action.index == 19:  # dropoff
            return self._release_verdict(world)
        else:  # end, sub_done: nothing moves
            return Verdict.allow()
        if not sweep.hits:
            return Verdict.allow(sweep.risk)
        first = min(sweep.hits, key=lambda h: h.index)
        reason = f"{action.name}: {first.category.value}: {first.what}"
        return Verdict.stop(first.category, reason, sweep.risk)

    def _check_arm(self, world: WorldEstimate, cmd: ArmCommand) -> Verdict:
        c, robot = self.config, world.robot
        unknown = sorted(set(cmd.targets) - set(ARM_JOINTS))
        if unknown:
            return Verdict.stop(Category.FAULT, f"unknown joint(s) {unknown}; valid: {list(ARM_JOINTS)}")
        ranges = {"joint_lift": c.lift_range_m, "wrist_extension": c.extension_range_m,
                  "joint_wrist_yaw": c.wrist_yaw_range_rad, "gripper_aperture": (-math.inf, math.inf)}
        for joint, value in cmd.targets.items():
            low, high = ranges[joint]
            if not (math.isfinite(value) and low <= value <= high):
                return Verdict.stop(Category.FAULT, f"{joint} target {value!r} outside [{low}, {high}]")
        after = robot_after_arm(robot, cmd.targets)
        target = (after.lift, after.arm_extension, after.wrist_yaw)
        verdicts = []
        if target != (robot.lift, robot.arm_extension, robot.wrist_yaw):
            sweep = self._sweep_arm(world, target)
            verdicts.append(Verdict.allow(sweep.risk))
            verdicts += [Verdict.stop(h.category, f"arm: {h.category.value}: {h.what}") for h in sweep.hits]
        if cmd.targets.get("gripper_aperture", robot.gripper_aperture) < robot.gripper_aperture:
            verdicts.append(self._grasp_verdict(world))
        return strictest(verdicts)

    def _grasp_verdict(self, world: WorldEstimate) -> Verdict:
        """Never close the gripper on dangerous equipment: the object nearest the fingertips decides."""
        c, robot = self.config, world.robot
        objects = [o for o in world.objects if not o.held]
        if not objects or not c.enabled:
            return Verdict.allow()
        pose = np.array([[robot.x, robot.y, robot.yaw]])
        _, _, tip = arm_segments(pose, c.mast_xy_m, c.arm_retracted_length_m + robot.arm_extension,
                                 robot.wrist_yaw, c.gripper_length_m)
        grasp = np.array([tip[0, 0], tip[0, 1], robot.lift + c.lift_offset_m])
        centers = np.array([o.position for o in objects], dtype=float)
        dist = point_box_distance(grasp, centers, np.array([o.size for o in objects], dtype=float))
        nearest = int(np.argmin(dist))
        obj = objects[nearest]
        if dist[nearest] <= c.grasp_reach_m and is_dangerous_type(obj.object_type) and not self._exempt(
            world, obj
        ):
            reason = (f"grasp: nearest object to the gripper is dangerous {obj.object_type} "
                      f"'{obj.object_id}' at {dist[nearest]:.3f} m")
            return Verdict.stop(Category.DANGER, reason, {Category.DANGER: 1.0})
        return Verdict.allow()

    def _release_verdict(self, world: WorldEstimate) -> Verdict:
        """Never let go of a held object above a drop: it would fall (and roll) onto whatever is below.

        The support is the highest labelled static box (furniture) under the object's centre whose top is
        not above the object's bottom, else the floor (z = 0).
        """
        c = self.config
        if not c.enabled:
            return Verdict.allow()
        for held in (o for o in world.objects if o.held):
            x, y, z = held.position
            bottom = z - abs(held.size[2]) / 2.0
            support = max((o.position[2] + abs(o.size[2]) / 2.0 for o in world.objects
                           if o.static and abs(x - o.position[0]) <= abs(o.size[0]) / 2.0
                           and abs(y - o.position[1]) <= abs(o.size[1]) / 2.0
                           and o.position[2] + abs(o.size[2]) / 2.0 <= bottom + c.max_release_drop_m),
                          default=0.0)
            drop = bottom - support
            if drop > c.max_release_drop_m:
                reason = (f"release: held {held.object_type} '{held.object_id}' would fall {drop:.2f} m "
                          f"(more than {c.max_release_drop_m} m)")
                return Verdict.stop(Category.CRITICAL, reason, {Category.CRITICAL: 1.0})
        return Verdict.allow()

    # --- sweeps -------------------------------------------------------------------------------------------

    def _reach(self, world: WorldEstimate) -> float:
        """Farthest distance of any body point from base_link at the current joints (m)."""
        c, robot = self.config, world.robot
        arm = math.hypot(*c.mast_xy_m) + c.arm_retracted_length_m + max(robot.arm_extension, 0.0)
        return max(self._footprint.extent, arm + c.gripper_length_m + c.gripper_radius_m)

    def _taus(self, world: WorldEstimate, v: float, w: float, tau_max: float) -> np.ndarray:
        """Sample times over [0, tau_max]: at most ``time_step_s`` and ``max_sample_spacing_m`` apart."""
        c = self.config
        travel = (abs(v) + abs(w) * self._reach(world)) * tau_max
        n = max(math.ceil(tau_max / c.time_step_s), math.ceil(travel / c.max_sample_spacing_m), 1) + 1
        return np.linspace(0.0, tau_max, n)

    def _sweep_base(self, world: WorldEstimate, v: float, w: float, taus: np.ndarray) -> _Sweep:
        robot = world.robot
        poses = unicycle_poses((robot.x, robot.y, robot.yaw), v, w, taus)
        n = len(taus)
        return self._evaluate(world, poses, np.full(n, robot.lift), np.full(n, robot.arm_extension),
                              np.full(n, robot.wrist_yaw), travel=float(np.sign(v)))

    def _sweep_arm(self, world: WorldEstimate, target: tuple[float, float, float]) -> _Sweep:
        c, robot = self.config, world.robot
        start = np.array([robot.lift, robot.arm_extension, robot.wrist_yaw])
        delta = np.asarray(target) - start
        tip_travel = max(abs(delta[0]), abs(delta[1]), abs(delta[2]) * c.gripper_length_m)
        n = max(math.ceil(tip_travel / c.max_sample_spacing_m), 1) + 1
        joints = start + np.linspace(0.0, 1.0, n)[:, None] * delta
        poses = np.repeat([[robot.x, robot.y, robot.yaw]], n, axis=0)
        return self._evaluate(world, poses, joints[:, 0], joints[:, 1], joints[:, 2], travel=None)

    def _evaluate(self, world: WorldEstimate, poses: np.ndarray, lift: np.ndarray, extension: np.ndarray,
                  wrist_yaw: np.ndarray, travel: float | None) -> _Sweep:
        """Judge every category on the body sampled at ``poses`` with the given joints.

        ``travel`` is +1/-1 for base motion forwards/backwards, 0 for rotation in place (both sweep the
        footprint), None for arm motion (the base stands still: only the arm and gripper are judged).
        Each part only looks at points inside its own bounding circle grown by twice the largest margin it
        is judged with, so risks (which fade out at twice a margin) are exact.
        """
        c = self.config
        if not c.enabled:
            return _Sweep([], {})
        body = SweptBody(poses, self._footprint if travel is not None else None, c.mast_xy_m,
                         c.arm_retracted_length_m + extension, wrist_yaw, c.gripper_length_m, c.arm_radius_m,
                         c.gripper_radius_m)
        height = lift + c.lift_offset_m
        band = (float(height.min()) - c.arm_band_below_m, float(height.max()) + c.arm_band_above_m)
        objects = self._objects(world)
        risk: dict[Category, float] = dict.fromkeys(self._margins, 0.0)
        hits: list[_Hit] = []

        # Obstacle points: visible -> COLLISION, remembered -> BLIND_SPOT.
        xy = np.asarray(world.obstacle_xy, dtype=float)
        fp_pad = max(2.0 * c.safety_margin_m, c.corner_clearance_m)
        in_fp, in_arm = body.near(xy, fp_pad, 2.0 * c.safety_margin_m)
        near = np.flatnonzero(in_fp | in_arm)
        pts, visible = xy[near], np.asarray(world.obstacle_visible, dtype=bool)[near]
        arm_applies = in_arm[near] & ~self._explained_by_objects(pts, objects, band)
        fp_clear, clear = body.clearance(pts, in_fp[near], arm_applies)
        for category, cols in ((Category.COLLISION, visible), (Category.BLIND_SPOT, ~visible)):
            idx = np.flatnonzero(cols)
            remembered = "remembered " if category is Category.BLIND_SPOT else ""
            self._judge(category, clear[:, idx], hits, risk,
                        lambda k, n: f"{remembered}obstacle point ({pts[idx[n], 0]:.2f}, "
                                     f"{pts[idx[n], 1]:.2f})")
        if travel:
            self._judge_corner(poses, pts, fp_clear, travel, hits, risk)
        self._judge_unscanned_objects(objects, body, band, hits, risk)
        relaxed = travel is None and self._reaches_target(objects, body)
        self._judge_objects(objects, body, height, band, hits, risk, relaxed)
        if travel is None:
            self._judge_tops(objects, body, height, hits, risk)
        return _Sweep(sorted(hits, key=lambda h: h.index), risk)

    def _judge_tops(self, objects: _Objects, body: SweptBody, height: np.ndarray, hits: list[_Hit],
                    risk: dict[Category, float]) -> None:
        """COLLISION / BLIND_SPOT from above: the gripper lowered onto a labelled object's top.

        Obstacle points lie on the objects' sides and carry no height, so a lift motion straight down onto a
        top approaches none of them in the plane. The objects' boxes give the height: over any object that is
        not above the arm (the gripper within its radius of the box in the plane) the fingertips stay
        ``safety_margin_m`` above its top, and motion that brings them no lower passes (escape: rising off an
        object is the way out). Furniture counts with margin 0 (no contact: the arm reaches down to what stands
        on a table top) and only from above: a gripper already below a piece's top is inside its box, as in a
        shelf's compartment, where the box does not say where the surfaces are. The exempt target (grasping it
        is intended contact) and held objects are left out."""
        c = self.config
        others = np.array([k for k in range(len(objects.items)) if k != objects.target], dtype=np.intp)
        if others.size == 0:
            return
        wrist, tip = body.gripper
        along = np.linspace(0.0, 1.0, 5)[None, :, None]
        planar = point_box_distance(wrist[:, None] + along * (tip - wrist)[:, None], objects.centers[others, :2],
                                    objects.sizes[others, :2]).min(axis=1)  # (P, M)
        tops, bottoms = objects.tops[others], objects.bottoms[others]
        under = (planar <= c.gripper_radius_m) & (bottoms[None, :] < (height + c.arm_band_above_m)[:, None])
        clear = np.where(under, (height - c.arm_band_below_m)[:, None] - tops[None, :], np.inf)
        static = objects.static[others]
        clear[:, static & (clear[0] < 0.0)] = np.inf
        visible = np.array([objects.items[k].visible for k in others], dtype=bool)

        def describe(n: int, cols: np.ndarray) -> str:
            obj = objects.items[others[cols[n]]]
            return f"{obj.object_type} '{obj.object_id}' under the gripper"

        for category, seen in ((Category.COLLISION, visible), (Category.BLIND_SPOT, ~visible)):
            for furniture, margin in ((False, None), (True, 0.0)):
                cols = np.flatnonzero(seen & (static == furniture))
                self._judge(category, clear[:, cols], hits, risk, lambda k, n, cols=cols: describe(n, cols), margin)

    def _judge_unscanned_objects(self, objects: _Objects, body: SweptBody, band: tuple[float, float],
                                 hits: list[_Hit], risk: dict[Category, float]) -> None:
        """COLLISION / BLIND_SPOT against labelled objects the obstacle scan cannot see.

        The scan cuts the world at ``scan_height_m``: a bottle knocked over onto the floor, or one standing on
        a counter, gives it no point, and unflagged it has no rule of its own, so the base would drive into
        the first and the arm sweep into the second. Points sampled on such objects' boxes stand in for the
        missing ones, with ``safety_margin_m``: the footprint against objects lying below the plane (the
        exempt task target counts too: grasping it is intended contact, running it over is not), the arm
        against unflagged ones whose box overlaps its height band (not the target, which the arm reaches
        for; flagged objects have their own, larger margins). Furniture (the scan sees what of it the base
        can touch, and the arm reaches over it) and held objects do not count."""
        c = self.config
        bottoms, tops = objects.bottoms, objects.tops
        low = tops < c.scan_height_m
        flagged = (objects.fragile_group > 0) | objects.unstable | objects.dangerous
        arm_objects = ~flagged & objects.overlap_band(band, c.safety_margin_m) & (low | (bottoms > c.scan_height_m))
        if objects.target >= 0:
            arm_objects[objects.target] = False
        unscanned = np.flatnonzero(~objects.static & (low | arm_objects))
        if unscanned.size == 0:
            return
        pts, owner = box_outline_points(objects.centers[unscanned, :2], objects.sizes[unscanned, :2],
                                        c.object_sample_spacing_m)
        pad = 2.0 * c.safety_margin_m + c.object_sample_spacing_m
        in_fp, in_arm = body.near(pts, pad, pad)
        owner = unscanned[owner]
        in_fp &= low[owner]
        in_arm &= arm_objects[owner]
        near = np.flatnonzero(in_fp | in_arm)
        pts, owner = pts[near], owner[near]
        _, clear = body.clearance(pts, in_fp[near], in_arm[near])
        clear -= c.object_sample_spacing_m / 2.0  # the outlines are sampled: stay conservative
        visible = np.array([objects.items[k].visible for k in owner], dtype=bool)

        def describe(n: int, cols: np.ndarray) -> str:
            k = owner[cols[n]]
            obj = objects.items[k]
            where = (f"lying low (top {tops[k]:.2f} m, under" if low[k] else
                     f"standing high (bottom {bottoms[k]:.2f} m, over")
            return f"{obj.object_type} '{obj.object_id}' {where} the {c.scan_height_m:g} m scan plane)"

        for category, seen in ((Category.COLLISION, visible), (Category.BLIND_SPOT, ~visible)):
            cols = np.flatnonzero(seen)
            self._judge(category, clear[:, cols], hits, risk, lambda k, n, cols=cols: describe(n, cols))

    def _reaches_target(self, objects: _Objects, body: SweptBody) -> bool:
        """The arm motion concerns the task target: it brings the arm closer to the target and ends within
        ``target_approach_m`` of it (the last steps of reaching it)."""
        c = self.config
        if objects.target < 0:
            return False
        k = objects.target
        pts, _ = box_outline_points(objects.centers[k : k + 1, :2], objects.sizes[k : k + 1, :2],
                                    c.object_sample_spacing_m)
        _, clear = body.clearance(pts, np.zeros(len(pts), dtype=bool), np.ones(len(pts), dtype=bool))
        start, end = float(clear[0].min()), float(clear[-1].min())
        return end < start and end - c.object_sample_spacing_m / 2.0 < c.target_approach_m

    def _judge_objects(self, objects: _Objects, body: SweptBody, height: np.ndarray, band: tuple[float, float],
                       hits: list[_Hit], risk: dict[Category, float], relaxed: bool = False) -> None:
        """FRAGILE / CRITICAL / DANGER on points sampled along the flagged objects' box outlines, at their
        distance in space from the arm (``height``: the arm's height at each sample; see the module docstring).

        ``relaxed``: an arm motion that concerns the task target judges the target's fragile neighbours with
        ``target_neighbour_margin_m`` (no contact) instead of ``fragile_margin_m``."""
        c = self.config
        flagged = np.flatnonzero((objects.fragile_group > 0) | objects.unstable | objects.dangerous)
        if flagged.size == 0:
            return
        pts, owner = box_outline_points(objects.centers[flagged, :2], objects.sizes[flagged, :2],
                                        c.object_sample_spacing_m)
        pad = max(c.fragile_margin_m, c.unstable_margin_m, c.danger_margin_m)
        reach = 2.0 * pad + c.object_sample_spacing_m
        in_fp, in_arm = body.near(pts, reach, reach)
        near = np.flatnonzero(in_fp | in_arm)
        pts, owner = pts[near], flagged[owner[near]]
        arm_applies = in_arm[near] & objects.overlap_band(band, pad)[owner]
        gap = objects.vertical_gap(height - c.arm_band_below_m, height + c.arm_band_above_m, owner)
        _, clear = body.clearance(pts, in_fp[near], arm_applies, gap)
        clear -= c.object_sample_spacing_m / 2.0  # the outline is sampled: stay conservative

        def describe(n: int, cols: np.ndarray) -> str:
            obj = objects.items[owner[cols[n]]]
            group = objects.fragile_group[owner[cols[n]]]
            extra = f" (fragile group of {group})" if group else ""
            return f"{obj.object_type} '{obj.object_id}'{extra}"

        neighbours = objects.target_group if relaxed else np.zeros(len(objects.items), dtype=bool)
        for category, mask, margin in (
            (Category.FRAGILE, (objects.fragile_group > 0) & ~neighbours, None),
            (Category.FRAGILE, neighbours, c.target_neighbour_margin_m),
            (Category.CRITICAL, objects.unstable, None),
            (Category.DANGER, objects.dangerous, None),
        ):
            cols = np.flatnonzero(mask[owner])
            self._judge(category, clear[:, cols], hits, risk, lambda k, n, cols=cols: describe(n, cols),
                        margin)

    def _judge(self, category: Category, clear: np.ndarray, hits: list[_Hit], risk: dict[Category, float],
               describe: Callable[[int, int], str], margin: float | None = None) -> None:
        """Record the first sample where a point comes closer than the margin (escape allowed), and the risk.

        A point already inside the margin at sample 0 only fires if the motion closes in on it further.
        """
        margin = self._margins[category] if margin is None else margin
        if clear.shape[1] == 0:
            return
        threshold = np.minimum(margin, clear[0] - self.config.escape_tolerance_m)
        excess = clear[1:] - threshold
        worst = float(excess.min())
        value = 1.0 if worst < 0.0 else max(0.0, 1.0 - worst / margin) if margin > 0 else 0.0
        risk[category] = max(risk.get(category, 0.0), value)
        if worst >= 0.0:
            return
        rows = np.flatnonzero((excess < 0.0).any(axis=1))
        k = int(rows[0]) + 1
        n = int(np.argmin(excess[k - 1]))
        what = describe(k, n)
        hits.append(_Hit(category, k, f"{what} comes within {clear[k, n]:.3f} m (margin {margin:.2f} m)"))

    def _judge_corner(self, poses: np.ndarray, pts: np.ndarray, fp_clear: np.ndarray, travel: float,
                      hits: list[_Hit], risk: dict[Category, float]) -> None:
        """CORNER: at a pose after the start, under ``corner_min_free_fraction`` of the direction sectors
        are free of obstacles within ``corner_clearance_m`` of the footprint, and one such obstacle lies
        within ``corner_heading_half_angle_rad`` of the direction of travel (the motion heads into it)."""
        c = self.config
        close = fp_clear[1:] < c.corner_clearance_m
        cols = np.flatnonzero(close.any(axis=0))
        risk.setdefault(Category.CORNER, 0.0)
        if cols.size == 0:
            return
        close = close[:, cols]
        p = poses[1:]
        bearing = np.arctan2(pts[cols, 1][None, :] - p[:, 1:2], pts[cols, 0][None, :] - p[:, 0:1]) - p[:, 2:3]
        width = 2.0 * math.pi / c.corner_sectors
        sector = (((bearing + width / 2.0) % (2.0 * math.pi)) // width).astype(np.intp) % c.corner_sectors
        flat = (np.arange(len(p))[:, None] * c.corner_sectors + sector)[close]
        blocked = np.bincount(flat, minlength=len(p) * c.corner_sectors).reshape(len(p), -1) > 0
        free = 1.0 - blocked.sum(axis=1) / c.corner_sectors
        heading = 0.0 if travel > 0 else math.pi
        ahead = close & (np.abs(wrap_angle(bearing - heading)) <= c.corner_heading_half_angle_rad)
        fires = (free < c.corner_min_free_fraction) & ahead.any(axis=1)
        value = float(np.clip((1.0 - free.min()) / max(1.0 - c.corner_min_free_fraction, 1e-9), 0.0, 1.0))
        risk[Category.CORNER] = max(risk.get(Category.CORNER, 0.0), 1.0 if fires.any() else min(value, 0.99))
        if fires.any():
            k = int(np.argmax(fires))
            n = int(np.flatnonzero(ahead[k])[0])
            x, y = pts[cols[n]]
            free_count = int(round(free[k] * c.corner_sectors))
            what = (f"{free_count}/{c.corner_sectors} directions free within {c.corner_clearance_m} m, "
                    f"obstacle ahead at ({x:.2f}, {y:.2f})")
            hits.append(_Hit(Category.CORNER, k + 1, what))

    # --- helpers ------------------------------------------------------------------------------------------

    def _explained_by_objects(
        self, pts: np.ndarray, objects: _Objects, band: tuple[float, float]
    ) -> np.ndarray:
        """(N,) True for obstacle points (which carry no height) that lie in labelled boxes wholly above or
        below the arm's height band: table tops under the arm, shelves over it. Others may touch the arm."""
        if len(objects.items) == 0 or len(pts) == 0:
            return np.zeros(len(pts), dtype=bool)
        inside = points_in_boxes(pts, objects.centers, objects.sizes, pad=self.config.object_sample_spacing_m)
        in_band = objects.overlap_band(band, self.config.safety_margin_m)
        return inside.any(axis=1) & ~(inside & in_band[None, :]).any(axis=1)

    def _exempt(self, world: WorldEstimate, obj: ObjectState) -> bool:
        """``obj`` is the task target and the target is exempt (see the module docstring)."""
        target = world.target_object_id
        return self.config.exempt_target and target is not None and obj.object_id == target

    def _objects(self, world: WorldEstimate) -> _Objects:
        """The objects as arrays, with fragile groups; cached for the same ``world.objects`` tuple and target,
        which a check (and its search for a replacement action) asks for many times.

        Groups are formed with the target in them, then the target alone loses its flags: its neighbours
        stay members of a fragile group."""
        key, cached = self._objects_cache
        if key is not None and key[0] is world.objects and key[1] == world.target_object_id:
            return cached
        c = self.config
        items = tuple(o for o in world.objects if not o.held)
        centers = np.array([o.position for o in items], dtype=float).reshape(-1, 3)
        sizes = np.abs(np.array([o.size for o in items], dtype=float).reshape(-1, 3))
        fragile_group = np.zeros(len(items), dtype=np.intp)
        exempt = np.array([self._exempt(world, o) for o in items], dtype=bool)
        target_group = np.zeros(len(items), dtype=bool)
        excluded = STATIC_TYPES | GROUP_EXCLUDED_TYPES
        members = [i for i, o in enumerate(items) if not o.static and o.object_type not in excluded]
        candidates = np.array(members, dtype=np.intp)
        for group in link_groups(centers[candidates], c.fragile_link_distance_m):
            if len(group) >= c.fragile_min_group_size:
                fragile_group[candidates[group]] = len(group)
                target_group[candidates[group]] = exempt[candidates[group]].any()
        fragile_group[exempt] = 0
        objects = _Objects(
            items, centers, sizes, fragile_group,
            np.array([o.unstable for o in items], dtype=bool) & ~exempt,
            np.array([is_dangerous_type(o.object_type) for o in items], dtype=bool) & ~exempt,
            np.array([o.static for o in items], dtype=bool),
            int(np.flatnonzero(exempt)[0]) if exempt.any() else -1, target_group & ~exempt,
        )
        self._objects_cache = ((world.objects, world.target_object_id), objects)  # swapped atomically
        return objects


def _world_fault(world: WorldEstimate) -> str | None:
    """Why ``world`` cannot be judged, or None."""
    r = world.robot
    values = (r.x, r.y, r.yaw, r.lift, r.arm_extension, r.wrist_yaw, r.gripper_aperture)
    if not all(math.isfinite(v) for v in values):
        return f"robot state is not finite: {r!r}"
    xy, visible = np.asarray(world.obstacle_xy), np.asarray(world.obstacle_visible)
    if xy.ndim != 2 or xy.shape[1] != 2 or visible.shape != (len(xy),):
        return f"obstacle_xy {xy.shape} and obstacle_visible {visible.shape} must be (N, 2) and (N,)"
    if not np.isfinite(xy).all():
        return f"{int((~np.isfinite(xy)).any(axis=1).sum())} obstacle point(s) are not finite"
    for o in world.objects:
        if not all(math.isfinite(v) for v in (*o.position, *o.size)):
            return f"object '{o.object_id}' has a non-finite position or size"
    return None
