"""What the privileged expert knows of the shield's hazards, as costs on its planning grid.

The shield (``safevla_node.safety.shield``) refuses any motion that brings the robot's body within a category
margin of a flagged object: a member of a fragile group (fragile margin), an object flagged unstable
(unstable margin) or dangerous equipment (danger margin); the task target itself is exempt, the other members
of its group are not. An expert that plans on walls and furniture only walks into those refusals where its
only approach passes a flagged object. These functions flag the scene's items with the shield's own rules
and thresholds (the ``ShieldConfig`` the expert plans with: ``SIM_ROBOT_SHIELD``, or the evaluated shield's
margins, ``safevla_node.evaluation.planning_margins``) and turn them into costs the expert's planner adds:

- ``base_penalty``: per grid cell, how deep the robot's body (footprint, and the stowed arm where the object is
  at the arm's height) would reach into the margins of flagged objects when standing there;
- ``arm_penalty``: per goal cell, how deep the arm, extended from that cell straight at a point (the
  target, or where an object is to be placed), would reach into the margins of flagged objects other than
  the target;
and the expert plans on the grid's ``distance_field`` with these penalties as the cost of entering a cell,
so a plan prefers a detour to a pass by a hazard, and still goes past one when there is no other way.

Costs are soft on purpose: when no approach keeps clear, the least intrusive one is still planned (the
shield then decides), so the expert never loses a task it could solve without a shield.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safevla_node.safety.geometry import link_groups
from safevla_node.safety.hazard_types import GROUP_EXCLUDED_TYPES, STATIC_TYPES, is_dangerous_type
from safevla_node.safety.shield import ShieldConfig
from sim_bridge.expert_shield import SIM_ROBOT_SHIELD
from sim_bridge.homegen.occupancy import OccupancyGrid
from sim_bridge.homegen.scene import Scene
from sim_bridge.mujoco import stretch_constants as C

__all__ = ["Flagged", "arm_penalty", "base_penalty", "flag_items"]

#: Clearance (m) kept beyond the shield's margins: discrete moves end up to a few cm off their nominal pose.
CUSHION_M = 0.05
#: Radius (m) of the base footprint's circumscribed circle (it turns in place at the goal).
FOOTPRINT_RADIUS_M = C.FOOTPRINT_RADIUS
#: Farthest point (m) of the stowed arm and open gripper from the base centre.
STOWED_ARM_RADIUS_M = math.hypot(C.MAST_XY[0], C.MAST_XY[1] - C.ARM_LENGTH_RETRACTED - C.GRASP_OFFSET) + 0.06
#: Half thickness (m) of the telescoping arm, and radius of the open gripper at its end.
ARM_RADIUS_M = 0.03
GRIPPER_RADIUS_M = 0.06
#: Clearance (m) kept beyond the shield's margins by the arm (which moves in exact joint steps).
ARM_CUSHION_M = 0.02
#: Height band of the arm body around the arm height (m): the fingertips hang below it.
_ARM_BAND = (-0.19, 0.04)
#: Heights (m) the arm body spans while reaching a point at height z: from the grasp (fingertips at z,
#: body up to z + drop + band top) to the clearance height ~0.1 m higher.
_REACH_SPAN = (-0.04, C.GRASP_DROP + 0.1 + 0.04)
#: Cost (m of path) per m of intrusion into a margin, per grid cell entered: a cell 0.1 m inside costs a
#: 1 m detour.
BASE_WEIGHT = 10.0
#: Cost (m of path) per m of intrusion of the arm into a margin at a goal cell.
ARM_WEIGHT = 20.0


@dataclass(frozen=True)
class Flagged:
    """The items the shield keeps the robot away from, as axis-aligned boxes (as the shield sees them).

    Attributes:
        ids: item ids.
        centers: (M, 3) box centres (m).
        sizes: (M, 3) box sizes (m).
        margins: (M,) the largest margin any of the item's flags carries (m).
        neighbour: (M,) the item shares a fragile group with the exempt target: the arm may pass it at the
            shield's ``target_neighbour_margin_m`` while reaching for the target.
        shield: the shield whose rules flagged them (its margins and sampling apply to the penalties too).
    """

    ids: tuple[str, ...]
    centers: np.ndarray
    sizes: np.ndarray
    margins: np.ndarray
    neighbour: np.ndarray
    shield: ShieldConfig

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sample_slack_m(self) -> float:
        """The shield samples object outlines and stays conservative by half the spacing; so does the expert."""
        return self.shield.object_sample_spacing_m / 2.0

    @property
    def z_pad_m(self) -> float:
        """The shield judges the arm only against flagged objects whose height range, grown by its largest margin,
        overlaps the arm's band (farther, the vertical gap alone keeps every margin). Within that, it adds the
        vertical gap to the planar distance; the expert's penalties take the planar distance alone, which
        overstates the arm's intrusion over a low object: conservative, and the probe asks the real shield."""
        return max(self.shield.fragile_margin_m, self.shield.unstable_margin_m, self.shield.danger_margin_m)


def flag_items(scene: Scene, target_id: str | None, held_id: str | None = None,
               shield: ShieldConfig = SIM_ROBOT_SHIELD) -> Flagged:
    """The scene's flagged items, by ``shield``'s rules: fragile groups are formed with the target in them,
    then the target alone loses its flags; ``held_id`` (carried) is left out, as the shield leaves held
    objects out."""
    c = shield
    items = [it for it in scene.items if it.item_id != held_id]
    centers = np.array([it.position for it in items], dtype=float).reshape(-1, 3)
    sizes = np.abs(np.array([it.size for it in items], dtype=float).reshape(-1, 3))
    margin = np.zeros(len(items))
    in_target_group = np.zeros(len(items), dtype=bool)
    excluded = STATIC_TYPES | GROUP_EXCLUDED_TYPES
    members = np.array([k for k, it in enumerate(items) if it.kind not in excluded], dtype=np.intp)
    exempt = np.array([it.item_id == target_id for it in items], dtype=bool)
    for group in link_groups(centers[members], c.fragile_link_distance_m):
        if len(group) >= c.fragile_min_group_size:
            margin[members[group]] = c.fragile_margin_m
            in_target_group[members[group]] = exempt[members[group]].any()
    for k, it in enumerate(items):
        if it.unstable:
            margin[k] = max(margin[k], c.unstable_margin_m)
        if is_dangerous_type(it.kind):
            margin[k] = max(margin[k], c.danger_margin_m)
    keep = (margin > 0.0) & ~exempt
    return Flagged(tuple(it.item_id for it, k in zip(items, keep) if k), centers[keep], sizes[keep],
                   margin[keep], in_target_group[keep], shield)


def _box_distance(px: np.ndarray, py: np.ndarray, center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """2-D distance from points (any shape) to one axis-aligned box (0 inside)."""
    dx = np.maximum(np.abs(px - center[0]) - size[0] / 2.0, 0.0)
    dy = np.maximum(np.abs(py - center[1]) - size[1] / 2.0, 0.0)
    return np.hypot(dx, dy)


def _overlaps(flagged: Flagged, k: int, low: float, high: float) -> bool:
    """The item's height range, grown as the shield grows it, overlaps [low, high] (the shield judges the
    arm only against objects at its height)."""
    bottom = flagged.centers[k, 2] - flagged.sizes[k, 2] / 2.0 - flagged.z_pad_m
    top = flagged.centers[k, 2] + flagged.sizes[k, 2] / 2.0 + flagged.z_pad_m
    return bool(bottom < high and top > low)


def base_penalty(grid: OccupancyGrid, flagged: Flagged, lift: float) -> np.ndarray:
    """Per cell: ``BASE_WEIGHT`` times the summed depth (m) by which the robot standing (and turning) there
    reaches into flagged items' margins plus ``CUSHION_M``; the stowed arm counts for items at its height
    (``lift`` is joint_lift)."""
    nx, ny = grid.free.shape
    px = grid.origin[0] + np.arange(nx)[:, None] * grid.res + np.zeros((1, ny))
    py = grid.origin[1] + np.arange(ny)[None, :] * grid.res + np.zeros((nx, 1))
    penalty = np.zeros((nx, ny))
    arm_height = lift + C.LIFT_ZERO_Z
    for k in range(len(flagged)):
        at_arm = _overlaps(flagged, k, arm_height + _ARM_BAND[0], arm_height + _ARM_BAND[1])
        body = STOWED_ARM_RADIUS_M if at_arm else FOOTPRINT_RADIUS_M
        reach = body + flagged.margins[k] + flagged.sample_slack_m + CUSHION_M
        lo = grid.cell(flagged.centers[k, 0] - reach - 1.0, flagged.centers[k, 1] - reach - 1.0)
        hi = grid.cell(flagged.centers[k, 0] + reach + 1.0, flagged.centers[k, 1] + reach + 1.0)
        win = (slice(lo[0], hi[0] + 1), slice(lo[1], hi[1] + 1))
        depth = reach - _box_distance(px[win], py[win], flagged.centers[k], flagged.sizes[k])
        penalty[win] += BASE_WEIGHT * np.maximum(depth, 0.0)
    return penalty


def arm_penalty(grid: OccupancyGrid, cells: np.ndarray, point: tuple[float, float, float], flagged: Flagged,
                reaching_target: bool) -> np.ndarray:
    """Per cell of ``cells`` (a mask; 0 elsewhere): ``ARM_WEIGHT`` times the deepest intrusion (m) of the arm
    into a flagged item's margin plus ``ARM_CUSHION_M`` when the robot, standing there, turns the arm towards
    ``point`` (x, y and the height the fingertips go down to; arm line through the mast, as the expert aligns
    it), extends it and lowers it there: the whole arm ends up at that height.

    With ``reaching_target`` (grasping the exempt target at ``point``) the target's group neighbours are
    judged with the shield's ``target_neighbour_margin_m`` (no contact), as the shield judges them while the
    arm closes in on the target.
    """
    out = np.zeros(grid.free.shape)
    if len(flagged) == 0 or not cells.any():
        return out
    base = grid.points(cells)  # (N, 2)
    tx, ty, tz = point
    vx, vy = tx - base[:, 0], ty - base[:, 1]
    dist = np.hypot(vx, vy)
    # Heading that puts the point on the arm line (base-frame x = MAST_XY[0], y < 0), as the expert turns.
    side = np.sqrt(np.maximum(dist * dist - C.MAST_XY[0] ** 2, 1e-9))
    yaw = np.arctan2(vy, vx) - np.arctan2(-side, C.MAST_XY[0])
    cos, sin = np.cos(yaw), np.sin(yaw)
    mx = base[:, 0] + cos * C.MAST_XY[0] - sin * C.MAST_XY[1]
    my = base[:, 1] + sin * C.MAST_XY[0] + cos * C.MAST_XY[1]
    ax, ay = tx - mx, ty - my  # mast -> point
    length = np.maximum(np.hypot(ax, ay), 1e-9)
    # Points on each object's outline, sampled like the shield's (corners included).
    worst = np.zeros(len(base))
    spacing = flagged.shield.object_sample_spacing_m
    for k in range(len(flagged)):
        if not _overlaps(flagged, k, tz + _REACH_SPAN[0], tz + _REACH_SPAN[1]):
            continue
        cx, cy = flagged.centers[k, :2]
        hx, hy = flagged.sizes[k, :2] / 2.0
        nxs = max(int(math.ceil(2 * hx / spacing)), 1) + 1
        nys = max(int(math.ceil(2 * hy / spacing)), 1) + 1
        xs, ys = np.linspace(cx - hx, cx + hx, nxs), np.linspace(cy - hy, cy + hy, nys)
        ox = np.concatenate([xs, xs, np.full(nys, cx - hx), np.full(nys, cx + hx)])
        oy = np.concatenate([np.full(nxs, cy - hy), np.full(nxs, cy + hy), ys, ys])
        # Position of each outline point along each cell's arm (0 at the mast, 1 at the point) and distance.
        t = np.clip(((ox[None, :] - mx[:, None]) * ax[:, None] + (oy[None, :] - my[:, None]) * ay[:, None])
                    / (length * length)[:, None], 0.0, 1.0)
        gap = np.hypot(mx[:, None] + t * ax[:, None] - ox[None, :], my[:, None] + t * ay[:, None] - oy[None, :])
        margin = float(flagged.margins[k])
        if reaching_target and flagged.neighbour[k]:
            margin = flagged.shield.target_neighbour_margin_m
        radius = np.where((1.0 - t) * length[:, None] < GRIPPER_RADIUS_M + C.GRASP_OFFSET, GRIPPER_RADIUS_M,
                          ARM_RADIUS_M)
        depth = margin + radius + flagged.sample_slack_m + ARM_CUSHION_M - gap
        worst = np.maximum(worst, depth.max(axis=1))
    out[cells] = ARM_WEIGHT * np.maximum(worst, 0.0)
    return out
