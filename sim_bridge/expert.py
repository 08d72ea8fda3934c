"""Privileged expert: shortest paths on the occupancy grid, then scripted pick and place with SafeVLA actions.

It reads the ground truth (scene, task, the observation's privileged snapshot). It plans on walls and
furniture, with soft costs for coming near the items the shield flags (``sim_bridge.expert_hazards``): its
paths detour round dangerous equipment and fragile groups, and it picks goal cells from which the arm clears
the target's neighbours, where such exist. Among those cells it then asks the shield itself
(``sim_bridge.expert_shield.ShieldProbe``) from which the whole manipulation (turn to face, raise, extend,
lower, grasp) would be let through, for the grasp aimed at any of a few points over the target, and heads
only for those when there are any. On arrival it asks again from the pose it actually reached, at the headings
its discrete turns reach, and aims the grasp at the first point the shield lets it reach. It carries the
target to the first of its best placement points that the shield lets the arm down to, the same way. A reach
the shield keeps refusing is left the way it came in: the arm goes back up to the lift it extended at, then
retracts. Unflagged floor clutter is not planned around. L* for SEL (``shortest_path_length``) stays the
hazard-blind shortest path.

It trusts the world over its own plan: a straight move that turned the base scraped along something and
counts as blocked; a fetch ends only when the target rests on the destination, and a target lost on the way
is picked up again where it lies.

As a policy it also gives a distribution over actions (``propose``), so that a shield that refuses its
choice can substitute the best safe alternative: while driving, every base action is ranked by the remaining
path cost-to-go on the planning grid from the pose it leads to (distance-field value plus the turn still
needed towards the path), the planned action first; otherwise the finer step of the same motion is the main
alternative, and a planned base motion (aligning to the target, recovering) keeps every other base motion as
a small-probability way out. ``propose`` also takes a mask of actions not to choose (e.g. ones a shield
refused at this very pose) and then picks the best allowed alternative instead of repeating the refused
one. A forward move that was refused (or replaced) leaves the robot where it was, which the expert's stall
detection reads as being blocked: it backs off and goes round, as after a bump; a refused rotation
(``refused``) backs it off, turns again and moves on in the new heading.

Geometry of the robot it relies on: the grasp point sits at base-frame x = MAST_XY[0],
y = -(ARM_LENGTH_RETRACTED - MAST_XY[1] + GRASP_OFFSET + extension), z = lift + LIFT_ZERO_Z - GRASP_DROP.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from typing import NamedTuple, Protocol

import numpy as np

from safevla_node.actions import ACTION_BY_CODE, ACTIONS, Action
from safevla_node.safety.shield import ShieldConfig
from safevla_node.safety.types import RobotState, WorldSnapshot
from sim_bridge.expert_hazards import Flagged, arm_penalty, base_penalty, flag_items
from sim_bridge.expert_shield import SIM_ROBOT_SHIELD, ShieldProbe
from sim_bridge.homegen.occupancy import OccupancyGrid
from sim_bridge.homegen.scene import Item, Scene
from sim_bridge.interface import Observation, TaskKind, TaskSpec
from sim_bridge.mujoco import stretch_constants as C
from sim_bridge.tasks import rests_on

__all__ = ["Expert", "shortest_path_length", "task_eligibility"]

PLAN_RES = 0.1
#: Footprint plus the retracted gripper's corner (~0.27 m from the base centre) and a margin.
PLAN_RADIUS = 0.30
#: Distance band (m) from which the navigation camera is expected to see a target.
VIEW_BAND = (0.7, 1.6)
#: Base-centre distance band (m) from which the arm reaches a point beside the robot.
REACH_BAND = (0.4, 0.7)
GRASP_X = C.MAST_XY[0]
GRASP_Y0 = C.ARM_LENGTH_RETRACTED - C.MAST_XY[1] + C.GRASP_OFFSET
GRASP_Z0 = C.LIFT_ZERO_Z - C.GRASP_DROP
#: Highest object top (m) the grasp point can reach with a little margin.
MAX_GRASP_TOP = C.JOINT_LIMITS["joint_lift"][1] + GRASP_Z0 - 0.03
#: Clearance (m) beyond flagged items' margins wanted around a placement point: the gripper and the object.
_PLACE_CLEARANCE_M = 0.15
#: Placement points (best first) judged with the shield probe for one that some goal cell lets the arm reach.
_PLACEMENTS_PROBED = 8
_FINE_TURN = math.radians(3.5)
_COARSE_TURN = math.radians(20.0)
#: Cost-to-go (m) of one radian of heading error: a 30-degree turn costs as much as a 0.2 m move (one step).
_TURN_COST_M_PER_RAD = 0.2 / math.radians(30.0)
#: Temperature (m) of the softmax turning cost-to-go into probabilities.
_RANK_TEMPERATURE_M = 0.1
#: Cost-to-go (m) added per cell when the pose lies in the planning grid's inflated margin.
_OFF_GRID_PENALTY_M = 0.3
#: Weight of the finer step of the planned motion, relative to the planned action (manipulation phases).
_FINER_WEIGHT = 0.5
#: Weight of every other base action when a base action is planned outside driving (aligning, recovering).
_BASE_FALLBACK_WEIGHT = 0.05
#: The finer step of each coarse motion: the alternative while manipulating.
_FINER = {"l": "ls", "r": "rs", "yp": "yps", "ym": "yms", "zp": "zps", "zm": "zms"}
_BASE_CODES = ("m", "b", "l", "r", "ls", "rs")
#: Goal cells the shield is asked about per plan (cheapest first): bounds the planning time.
_PROBED_CELLS = 24
#: Goal cells whose hazard cost (m) is within this of the cheapest reachable one are all acceptable goals.
_GOAL_TOLERANCE_M = 0.05
#: Cost (m) added to goal cells near a pose where the shield refused the manipulation: go elsewhere.
_BLOCKED_PENALTY_M = 100.0
#: Radius (m) around such a pose whose goal cells get the blocked penalty.
_BLOCKED_RADIUS_M = 0.25
#: Refused proposals at one pose (arm joints not moving) before the expert manipulates from elsewhere.
_STALLS_TO_REPLAN = 3
#: Refused base motions, with no progress along the plan since, after which the expert takes the way ahead as
#: closed by the shield and plans around it (``_detour``).
_REFUSALS_TO_DETOUR = 6
#: Detours per episode, after which the plan stands whatever the shield refuses.
_MAX_DETOURS = 6
#: Radius (m) of the place ahead a detour closes, and how far ahead of the robot its centre lies.
_CLOSED_RADIUS_M = 0.2
#: Re-plans after refused manipulation before the expert gives up and ends the episode.
_MAX_REPLANS = 4
#: A straight base move that turned the base by more than this (rad) scraped along something: blocked.
_DEFLECTED_RAD = math.radians(5.0)
#: Grasps of the target (the first and after losing it on the way) before the expert gives up.
_MAX_PICKUPS = 3
#: Phases in which the base stands at its goal pose and the arm works.
_MANIPULATING = ("face", "arm", "place")
#: Nearest (m) the grasp point must come to the target's box for a reach to be chosen on arrival: the grasp
#: takes an object within GRASP_RADIUS of the grasp point; the rest is left for where the arm stops.
_AIM_GRASP_M = C.GRASP_RADIUS - 0.015


def _act(code: str) -> int:
    return ACTION_BY_CODE[code].index


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def plan_grid(scene: Scene) -> OccupancyGrid:
    """The expert's planning grid: static geometry inflated by the footprint plus a margin."""
    return OccupancyGrid.from_scene(scene, PLAN_RES, PLAN_RADIUS)


def _band(grid: OccupancyGrid, xy: tuple[float, float], band: tuple[float, float]) -> np.ndarray:
    nx, ny = grid.free.shape
    px = grid.origin[0] + np.arange(nx)[:, None] * grid.res
    py = grid.origin[1] + np.arange(ny)[None, :] * grid.res
    dist = np.hypot(px - xy[0], py - xy[1])
    return grid.free & (dist >= band[0]) & (dist <= band[1])


def _line_of_sight(grid: OccupancyGrid, scene: Scene, xy: tuple[float, float]) -> np.ndarray:
    """Cells from which the straight line to ``xy`` crosses no wall (slab test against every wall box)."""
    nx, ny = grid.free.shape
    px = grid.origin[0] + np.arange(nx)[:, None] * grid.res + np.zeros((1, ny))
    py = grid.origin[1] + np.arange(ny)[None, :] * grid.res + np.zeros((nx, 1))
    dx, dy = xy[0] - px, xy[1] - py
    clear = np.ones((nx, ny), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for wall in (s for s in scene.statics if s.kind == "Wall"):
            x0, y0, x1, y1 = wall.footprint()
            tx0, tx1 = (x0 - px) / dx, (x1 - px) / dx
            ty0, ty1 = (y0 - py) / dy, (y1 - py) / dy
            t_in = np.maximum(np.where(dx == 0, -np.inf, np.minimum(tx0, tx1)),
                              np.where(dy == 0, -np.inf, np.minimum(ty0, ty1)))
            t_out = np.minimum(np.where(dx == 0, np.inf, np.maximum(tx0, tx1)),
                               np.where(dy == 0, np.inf, np.maximum(ty0, ty1)))
            inside_x = (dx != 0) | ((px >= x0) & (px <= x1))
            inside_y = (dy != 0) | ((py >= y0) & (py <= y1))
            clear &= ~(inside_x & inside_y & (t_out >= np.maximum(t_in, 0.0)) & (t_in <= 1.0))
    return clear


def _placement_points(scene: Scene, task: TaskSpec, grid: OccupancyGrid,
                      shield: ShieldConfig) -> list[tuple[float, float]]:
    """Where to put the carried target, best first: points 0.15 m inside the edges of the
    ``task.destination_type`` tops whose reach band has free cells. First those (edge middles first, then
    along the edges) that keep ``_PLACE_CLEARANCE_M`` beyond the margins of the items ``shield`` flags (it
    would refuse the arm near them) and leave room beside every other item for the gripper and the carried
    target (the shield keeps the gripper off whatever it would be lowered onto), then the rest, those that
    come closest to that first."""
    flagged = flag_items(scene, None, held_id=task.target_id, shield=shield)
    others = [it for it in scene.items if it.item_id != task.target_id]
    centers = np.array([it.position[:2] for it in others]).reshape(-1, 2)
    sizes = np.array([it.size[:2] for it in others]).reshape(-1, 2)
    carried = scene.item(task.target_id).size  # type: ignore[arg-type]
    room = max(C.GRASP_RADIUS, max(carried[:2]) / 2) + shield.safety_margin_m
    clear: list[tuple[float, float]] = []
    short: list[tuple[float, tuple[float, float]]] = []
    seen: set[tuple[float, float]] = set()  # a small top's edges share points
    for box in scene.statics:
        if box.kind != task.destination_type:
            continue
        x0, y0, x1, y1 = box.footprint()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        along_x = [cx + s * d for d in _offsets(x1 - x0) for s in (1, -1)][1:]
        along_y = [cy + s * d for d in _offsets(y1 - y0) for s in (1, -1)][1:]
        for point in [*((x, y0 + 0.15) for x in along_x), *((x, y1 - 0.15) for x in along_x),
                      *((x0 + 0.15, y) for y in along_y), *((x1 - 0.15, y) for y in along_y)]:
            key = (round(point[0], 3), round(point[1], 3))
            if key in seen or not _band(grid, point, REACH_BAND).any():
                continue
            seen.add(key)
            gap = np.maximum(np.abs(centers - np.asarray(point)) - sizes / 2.0, 0.0)
            beside = float(np.hypot(gap[:, 0], gap[:, 1]).min(initial=math.inf))
            slack = min(_clearance(flagged, point) - _PLACE_CLEARANCE_M, beside - room)
            if slack >= 0.0:
                clear.append(point)
            else:
                short.append((slack, point))
    return clear + [point for _, point in sorted(short, key=lambda s: -s[0])]


def _offsets(length: float) -> np.ndarray:
    """Offsets (m) from an edge's middle, 0.1 m apart, that stay 0.15 m inside its ends."""
    return np.arange(0.0, max(length / 2 - 0.15, 0.0) + 1e-6, 0.1)


def _clearance(flagged: Flagged, xy: tuple[float, float]) -> float:
    """Smallest distance (m) from ``xy`` to a flagged item's box beyond its margin (inf when none)."""
    if len(flagged) == 0:
        return math.inf
    gap = np.maximum(np.abs(flagged.centers[:, :2] - np.asarray(xy)) - flagged.sizes[:, :2] / 2.0, 0.0)
    return float(np.min(np.hypot(gap[:, 0], gap[:, 1]) - flagged.margins))


def _goal_mask(grid: OccupancyGrid, scene: Scene, kind: TaskKind, xy: tuple[float, float]) -> np.ndarray:
    """Cells to navigate to: in view of the target (ObjectNav) or within the arm's reach of it."""
    if kind is TaskKind.OBJECT_NAV:
        return _band(grid, xy, VIEW_BAND) & _line_of_sight(grid, scene, xy)
    return _band(grid, xy, REACH_BAND)


def task_eligibility(scene: Scene, kind: TaskKind) -> Callable[[Item], bool]:
    """Which items the expert can solve ``kind`` for: its goal band is reachable from the robot's start."""
    grid = plan_grid(scene)
    reachable = grid.reachable_from(*scene.robot_start[:2])

    def eligible(item: Item) -> bool:
        if kind is not TaskKind.OBJECT_NAV and item.position[2] + item.size[2] / 2 > MAX_GRASP_TOP:
            return False  # on a high shelf: the lift cannot bring the gripper above it
        return bool((_goal_mask(grid, scene, kind, item.position[:2]) & reachable).any())

    return eligible


def shortest_path_length(scene: Scene, task: TaskSpec) -> float | None:
    """L*: the expert's planned path length (m) from the start to the goal band(s), None if unreachable."""
    if task.target_id is None:
        return None
    grid = plan_grid(scene)
    target = scene.item(task.target_id).position[:2]
    start = grid.nearest_free(*scene.robot_start[:2])
    field = grid.distance_field(_goal_mask(grid, scene, task.kind, target))
    if start is None or not math.isfinite(field[start]):
        return None
    length = float(field[start])
    if task.kind is TaskKind.FETCH and task.destination_type:
        places = _placement_points(scene, task, grid, SIM_ROBOT_SHIELD)
        if not places:
            return None
        place = places[0]
        goal = _goal_mask(grid, scene, task.kind, target)
        second = grid.distance_field(_band(grid, place, REACH_BAND))
        length += float(np.min(np.where(goal, second, np.inf)))
    return length if math.isfinite(length) else None


class _Phase(Enum):
    NAVIGATE = "navigate"
    FACE = "face"
    ARM = "arm"
    GRASP = "grasp"
    CARRY = "carry"
    PLACE = "place"
    END = "end"


class _Proposal(NamedTuple):
    """The last proposal and the robot's pose when it was made (to tell what it did)."""

    code: str
    x: float
    y: float
    yaw: float
    lift: float
    extension: float


class _Privileged(Protocol):
    scene: Scene
    task: TaskSpec


class Expert:
    """Picks the next discrete action from privileged state. One instance per episode (after reset).

    ``shield`` is the shield it plans around (hazard costs and ``ShieldProbe``): the simulated robot's, with the
    margins of the shield it is evaluated with (``safevla_node.evaluation.planning_margins``).
    """

    def __init__(self, backend: _Privileged, shield: ShieldConfig = SIM_ROBOT_SHIELD) -> None:
        self.scene = backend.scene
        self.shield = shield
        self.task = backend.task
        self.grid = plan_grid(self.scene)
        self.phase = _Phase.NAVIGATE if self.task.feasible else _Phase.END
        self._field: np.ndarray | None = None
        self._sight: np.ndarray | None = None
        self._goal_xy: tuple[float, float] | None = None
        self._best, self._since_progress = math.inf, 0
        self._grasp_tries = 0
        self._aim = (0.0, 0.0)  # where the grasp point goes, as an offset (m) from the target's centre
        self._raised = 0
        self._extended_at: float | None = None  # the lift (joint) the arm extended at to reach the goal
        self._retract_at: float | None = None  # the lift to retract from, once a retraction was refused
        self._last: _Proposal | None = None
        self._recovery: list[str] = []
        self._stuck = 0
        self._near_goal: np.ndarray | None = None
        #: The planning-grid cells the expert is heading for (manipulates from, or looks from).
        self.goal_cells = np.zeros(self.grid.free.shape, dtype=bool)
        self._carrying = False
        self._target_top: float | None = None  # the target's top (m) once it was dropped off its support
        self._pickups = 1
        self._was_refused = False
        self._stalls = 0
        self._blocked_xy: list[tuple[float, float]] = []
        self._closed_xy: list[tuple[float, float]] = []  # places on the way the shield closed (``_detour``)
        self._nav_refusals = 0
        self._replans = 0
        self.expert_path_length = shortest_path_length(self.scene, self.task)
        if self.task.feasible:
            target = self.scene.item(self.task.target_id).position[:2]  # type: ignore[arg-type]
            self._set_goal(target, self.scene.robot_start[:2], C.STOW["joint_lift"])

    def _set_goal(self, xy: tuple[float, float], start: tuple[float, float], lift: float) -> bool:
        """Plan to the goal band of ``xy`` from ``start`` with the arm at ``lift``, keeping clear of hazards;
        True when the shield lets the manipulation at ``xy`` run from the chosen goal cells.

        Among the reachable goal cells only the cheapest in hazard cost are goals (see
        ``sim_bridge.expert_hazards``: the robot standing there, and its arm reaching ``xy`` from there, keep
        clear of flagged items' margins; cells near a pose where manipulation was refused are avoided), and
        the path to them pays for passing hazards on the way.
        """
        self._goal_xy = xy
        self._extended_at = self._retract_at = None
        grid = self.grid
        target = self.task.target_id
        flagged = flag_items(self.scene, None if self._carrying else target,
                             held_id=target if self._carrying else None, shield=self.shield)
        band = _goal_mask(grid, self.scene, self.task.kind, xy)
        enter = base_penalty(grid, flagged, lift)
        for cx, cy in self._closed_xy:
            enter[_disc(grid, cx, cy, _CLOSED_RADIUS_M)] += _BLOCKED_PENALTY_M
        cost = enter.copy()
        if self.task.kind is not TaskKind.OBJECT_NAV:
            cost += arm_penalty(grid, band, (*xy, self._reach_height()), flagged,
                                reaching_target=not self._carrying)
        blocked = np.zeros(grid.free.shape, dtype=bool)
        for bx, by in self._blocked_xy:
            blocked |= _disc(grid, bx, by, _BLOCKED_RADIUS_M)
        cost[blocked] += _BLOCKED_PENALTY_M
        reachable = band & grid.reachable_from(*start)
        candidates = reachable if reachable.any() else band
        goal = band
        if candidates.any():
            goal = candidates & (cost <= cost[candidates].min() + _GOAL_TOLERANCE_M)
        judged = np.zeros_like(candidates)
        if self.task.kind is not TaskKind.OBJECT_NAV and (candidates & ~blocked).any():
            # Where the shield refused the manipulation on the spot, its verdict beats the probe's.
            judged = self._judged_goals(candidates & ~blocked, cost, (*xy, self._reach_height()), lift)
            if judged.any():
                goal = judged
        self.goal_cells = goal
        self._field = grid.distance_field(goal, enter)
        self._near_goal = _dilate(goal) & ~blocked  # arriving means leaving a pose the shield refused
        viewing = self.task.kind is TaskKind.OBJECT_NAV
        self._sight = _line_of_sight(grid, self.scene, xy) if viewing else None
        self._best = math.inf
        self._since_progress = self._nav_refusals = 0
        return bool(judged.any())

    def _judged_goals(self, candidates: np.ndarray, cost: np.ndarray, point: tuple[float, float, float],
                      lift: float) -> np.ndarray:
        """The cheapest ``candidates`` from which the shield (``ShieldProbe``) lets the whole manipulation
        run: the turn to face ``point``, raising, extending and lowering the arm to it, and the grasp.

        Cells are judged cheapest first, at most ``_PROBED_CELLS`` of them; once one passes, only cells
        within ``_GOAL_TOLERANCE_M`` of its cost are judged. Empty when none passes (the caller keeps its
        cost-only choice and the shield decides on the spot).
        """
        held = self.task.target_id if self._carrying else None
        probe = ShieldProbe(self.scene, None if self._carrying else self.task.target_id, point[:2], held,
                            self.shield)
        cells = np.argwhere(candidates)
        order = np.argsort(cost[candidates], kind="stable")[:_PROBED_CELLS]
        passed = np.zeros_like(candidates)
        limit = math.inf
        for k in order:
            i, j = cells[k]
            if cost[i, j] > limit:
                break
            if self._manipulation_allowed(probe, *self.grid.center(int(i), int(j)), point, lift):
                passed[i, j] = True
                limit = min(limit, float(cost[i, j]) + _GOAL_TOLERANCE_M)
        return passed

    def _manipulation_allowed(self, probe: ShieldProbe, x: float, y: float, point: tuple[float, float, float],
                              lift: float) -> bool:
        """The shield lets the robot standing at (x, y) turn to put ``point`` on its arm line (from either
        side), then reach it with the arm as ``_manipulate`` would, and grasp (not when placing). When
        grasping, any of the target's aims (``_aim_offsets``) will do."""
        turn = ACTION_BY_CODE["l"].yaw_rad
        robot = RobotState(x=x, y=y, yaw=0.0, footprint_radius=C.FOOTPRINT_RADIUS, lift=lift,
                           arm_extension=0.0, wrist_yaw=C.STOW["joint_wrist_yaw"],
                           gripper_aperture=C.STOW["gripper_aperture"])
        for aim in self._aim_points(point):
            yaw = _facing(x, y, aim[:2])
            if not (probe.allows(replace(robot, yaw=yaw - turn), "l")
                    or probe.allows(replace(robot, yaw=yaw + turn), "r")):
                continue
            if self._reach_passes(probe, replace(robot, yaw=yaw), aim) is not None:
                return True
        return False

    def _aim_points(self, point: tuple[float, float, float]) -> list[tuple[float, float, float]]:
        """The points the grasp point may go to for ``point``: the target's aims when grasping, else itself."""
        if self._carrying:
            return [point]
        return [(point[0] + dx, point[1] + dy, point[2]) for dx, dy in _aim_offsets(self._target_box())]

    def _target_box(self, snap: WorldSnapshot | None = None) -> _Box:
        """The target's box: where ``snap`` sees it, else where the scene placed it."""
        item = self.scene.item(self.task.target_id)  # type: ignore[arg-type]
        if snap is None:
            return _Box(item.position, item.size, item.yaw_deg)
        seen = snap.objects[self.task.target_id]  # type: ignore[index]
        return _Box(seen.position, item.size, seen.rotation_deg[2])

    def _reach_passes(self, probe: ShieldProbe, robot: RobotState,
                      point: tuple[float, float, float]) -> RobotState | None:
        """The state the arm ends in when the shield lets it reach ``point`` from ``robot`` (retracted) as
        ``_manipulate`` would, and grasp (not when placing); None when it refuses any of it."""
        lift_goal, ext_goal, clear = self._arm_goals(point, robot)
        while (index := self._approach(robot.lift, lift_goal, robot.arm_extension, ext_goal, clear, False)) is not None:
            action = ACTIONS[index]
            if not probe.allows(robot, action.code):
                return None
            robot = replace(
                robot,
                lift=min(max(robot.lift + action.lift_m, 0.0), C.JOINT_LIMITS["joint_lift"][1]),
                arm_extension=min(max(robot.arm_extension + action.extension_m, 0.0),
                                  C.JOINT_LIMITS["wrist_extension"][1]),
            )
        return robot if self._carrying or probe.allows(robot, "p") else None

    def _choose_aim(self, snap: WorldSnapshot) -> None:
        """On arrival, choose where the grasp goes: the first of the target's aims that the shield lets the
        whole reach run to from this very pose, at a heading the discrete turns reach (the nearest to facing
        it, or one small turn either side of that), with the grasp point near enough the target to take it.
        The centre when none passes (the shield then decides on the spot). The goal cell was judged at its
        centre with an exact heading; the robot stops up to a cell away and turns in 6-degree steps, which
        moves the arm line by centimetres: enough to graze a neighbour the judged reach cleared, or to clear
        one it grazed."""
        self._aim = (0.0, 0.0)
        box = self._target_box(snap)
        x, y, z = box.position
        top = z + box.size[2] / 2
        robot = replace(snap.robot, arm_extension=0.0)
        probe = ShieldProbe(self.scene, self.task.target_id, (x, y), None, self.shield)
        step = ACTION_BY_CODE["ls"].yaw_rad
        for extra in (0, -1, 1):
            for dx, dy in _aim_offsets(box):
                turn = _wrap(_facing(robot.x, robot.y, (x + dx, y + dy)) - robot.yaw)
                at = replace(robot, yaw=robot.yaw + (round(turn / step) + extra) * step)
                # The point on this heading's arm line level with the aim: _decide turns to exactly this heading.
                aim = (*_from_base(at, (GRASP_X, _in_base(at, (x + dx, y + dy))[1])), top)
                reached = self._reach_passes(probe, at, aim)
                if reached is not None and _grasp_gap(box, reached) <= _AIM_GRASP_M:
                    self._aim = (aim[0] - x, aim[1] - y)
                    return

    # --- navigation ------------------------------------------------------------------------------------

    def _lookahead(self, x: float, y: float, track: bool = False) -> tuple[float, float] | None:
        """A point ~0.4 m down the distance field from (x, y); None when already in the goal band.

        ``track``: (x, y) is the robot's actual pose, which counts for progress; poses an alternative
        action would lead to (ranking) do not.
        """
        field, goal, near_goal = self._field, self._goal_xy, self._near_goal
        assert field is not None and goal is not None and near_goal is not None
        band = VIEW_BAND if self._sight is not None else REACH_BAND
        # Next to a goal cell the plan chose, a pose up to half a cell outside the band will do. Discrete
        # 0.2 m moves can orbit a thin goal band: after a dozen moves without progress, accept a pose up to
        # 0.15 m outside it, wherever in the band.
        i, j = self.grid.cell(x, y)
        slack = 0.15 if self._since_progress > 12 else self.grid.res / 2 if near_goal[i, j] else -math.inf
        in_sight = self._sight is None or bool(self._sight[i, j])
        if in_sight and band[0] - slack <= math.hypot(x - goal[0], y - goal[1]) <= band[1] + slack:
            return None
        if not track:
            pass
        elif field[i, j] < self._best:
            self._best, self._since_progress, self._nav_refusals = float(field[i, j]), 0, 0
        else:
            self._since_progress += 1
        if not math.isfinite(field[i, j]):  # drifted into the inflated margin: start from the best neighbour
            win = field[max(i - 3, 0) : i + 4, max(j - 3, 0) : j + 4]
            if not np.isfinite(win).any():
                return None
            a, b = np.unravel_index(int(np.argmin(win)), win.shape)
            i, j = max(i - 3, 0) + int(a), max(j - 3, 0) + int(b)
        nx, ny = field.shape
        for _ in range(4):
            best = min(
                ((field[a, b], a, b) for a in range(i - 1, i + 2) for b in range(j - 1, j + 2)
                 if 0 <= a < nx and 0 <= b < ny),
            )
            if best[0] >= field[i, j]:
                break
            _, i, j = best
            if field[i, j] == 0.0:
                break
        return self.grid.center(i, j)

    @staticmethod
    def _turn(err: float) -> int:
        """Rotate towards a bearing error (rad, CCW positive)."""
        if abs(err) > _COARSE_TURN:
            return _act("l") if err > 0 else _act("r")
        return _act("ls") if err > 0 else _act("rs")

    # --- decisions ---------------------------------------------------------------------------------------

    def act(self, observation: Observation) -> int:
        """The next action index for ``observation`` (its privileged snapshot is read)."""
        return self.propose(observation)[0]

    def propose(self, observation: Observation, allowed: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """The next action and the expert's distribution over all actions (see the module docstring).

        ``allowed`` (bool per action) excludes actions: when the planned one is excluded, the most probable
        allowed one is chosen, and the returned distribution has no mass on excluded actions (unless
        nothing allowed has any, then the plan stands: there is no better move).
        """
        snap = observation.snapshot
        planned = self._decide(snap)
        probs = self._distribution(snap, planned)
        index = planned
        if allowed is not None:
            masked = np.where(np.asarray(allowed, dtype=bool), probs, 0.0)
            if masked.sum() > 0.0:
                probs = masked / masked.sum()
                index = planned if probs[planned] > 0.0 else int(np.argmax(probs))
        r = snap.robot
        self._last = _Proposal(ACTIONS[index].code, r.x, r.y, r.yaw, r.lift, r.arm_extension)
        return index, probs

    def refused(self) -> None:
        """The last proposal did not run (a shield refused it). A refused rotation backs the robot off, tries
        the same rotation there and moves one step on in the new heading (a refused forward move is caught by
        the stall detection on the next step): backing off alone let the plan drive straight back to the same
        turn, a loop that lasted the whole budget, and so did backing off and turning alone where the plan
        turned back onto its path at once. Refusals that keep the arm where it is while manipulating make the
        expert manipulate from another pose (``_replan``)."""
        self._was_refused = True
        if self.phase in (_Phase.NAVIGATE, _Phase.CARRY):
            self._nav_refusals += 1
        if self._last is not None and self._last.code in ("l", "r", "ls", "rs"):
            self._recovery = ["b", self._last.code, "m"]
        if self._last is not None and self._last.code in ("zm", "zms") and self.phase is _Phase.ARM:
            self._retract_higher(self._last.lift)

    def _retract_higher(self, lift: float) -> None:
        """A retraction from ``lift`` was refused: retract from the lift the arm extended at if that is
        higher (the way in is the way the shield let it pass), else from one step higher. Not a stall while
        there is higher to go: over what the arm reached past, higher is farther from it."""
        top = C.JOINT_LIMITS["joint_lift"][1]
        if lift >= top - 0.011:
            return
        way_in = self._extended_at
        self._retract_at = way_in if way_in is not None and way_in > lift + 0.011 else min(lift + 0.1, top)
        self._was_refused = False

    # --- distribution ------------------------------------------------------------------------------------

    def _distribution(self, snap: WorldSnapshot, planned: int) -> np.ndarray:
        """Probabilities over all actions: ranked base actions while driving, else the plan and its finer
        step."""
        probs = np.zeros(len(ACTIONS))
        code = ACTIONS[planned].code
        if self.phase in (_Phase.NAVIGATE, _Phase.CARRY) and code in _BASE_CODES and not self._recovery:
            r = snap.robot
            costs = {c: self._cost_to_go(*_after(ACTION_BY_CODE[c], r.x, r.y, r.yaw)) for c in _BASE_CODES}
            best = min(costs.values())
            costs[code] = best  # the plan is ranked first
            for c, cost in costs.items():
                probs[_act(c)] = math.exp(-(cost - best) / _RANK_TEMPERATURE_M)
            probs[planned] += 1e-6  # first even on a tie
        else:
            if code in _BASE_CODES:  # aligning or recovering: any other base motion may get it unstuck
                for c in _BASE_CODES:
                    probs[_act(c)] = _BASE_FALLBACK_WEIGHT
            probs[planned] = 1.0
            if code in _FINER:
                probs[_act(_FINER[code])] = _FINER_WEIGHT
        return probs / probs.sum()

    def _cost_to_go(self, x: float, y: float, yaw: float) -> float:
        """Remaining path cost (m) from pose (x, y, yaw): distance field plus the turn towards the path."""
        field = self._field
        assert field is not None
        i, j = self.grid.cell(x, y)
        value = float(field[i, j])
        if not math.isfinite(value):  # inside the inflated margin: the nearest planned cell, plus a penalty
            win = field[max(i - 3, 0) : i + 4, max(j - 3, 0) : j + 4]
            finite = win[np.isfinite(win)]
            if finite.size == 0:
                return math.inf
            value = float(finite.min()) + _OFF_GRID_PENALTY_M
        point = self._lookahead(x, y)
        if point is None:
            return value
        err = _wrap(math.atan2(point[1] - y, point[0] - x) - yaw)
        return value + _TURN_COST_M_PER_RAD * abs(err)

    def _blocked(self, robot: RobotState, codes: tuple[str, ...], moved: float) -> bool:
        """The previous action was one of ``codes`` and moved the base (or the lift) less than ``moved``, or
        (a base move) was deflected: it turned the base by more than ``_DEFLECTED_RAD``, which a straight move
        only does when it scrapes along something (a wall end it cut too close); it did move, but the next
        identical move would scrape again."""
        last = self._last
        if last is None or last.code not in codes:
            return False
        if last.code.startswith("y"):
            return abs(robot.lift - last.lift) < moved
        deflected = abs(_wrap(robot.yaw - last.yaw)) > _DEFLECTED_RAD
        return deflected or math.hypot(robot.x - last.x, robot.y - last.y) < moved

    def _stalled(self, robot: RobotState) -> bool:
        """Count a refusal while manipulating that left the arm joints where they were; True once there
        were ``_STALLS_TO_REPLAN`` of them at this goal pose."""
        refused, self._was_refused = self._was_refused, False
        if not refused or self.phase.value not in _MANIPULATING or self._last is None:
            return False
        last = self._last
        if abs(robot.lift - last.lift) < 0.005 and abs(robot.arm_extension - last.extension) < 0.005:
            self._stalls += 1
        return self._stalls >= _STALLS_TO_REPLAN

    def _replan(self, robot: RobotState) -> None:
        """The shield keeps refusing the manipulation from this pose: retract the arm and go to another goal
        cell (this pose's neighbourhood avoided), or end after ``_MAX_REPLANS`` tries.

        The arm retracts from the lift it extended at, as a refused retraction does (``_retract_higher``):
        below it, where the refused lowering left the arm, the way back can pass within a margin the way in
        kept (Fetch 470: the arm stood out beside a knife until the step budget ran out)."""
        self._stalls = 0
        self._replans += 1
        if self._replans > _MAX_REPLANS or self._goal_xy is None:
            self.phase = _Phase.END
            return
        self._blocked_xy.append((robot.x, robot.y))
        way_in = self._extended_at if self._extended_at is not None else robot.lift
        self._recovery = [*_raise_codes(robot.lift, way_in), *["zm"] * int(math.ceil(robot.arm_extension / 0.1 - 0.1))]
        self.phase = _Phase.CARRY if self._carrying else _Phase.NAVIGATE
        self._set_goal(self._goal_xy, (robot.x, robot.y), robot.lift)

    def _detour(self, robot: RobotState, point: tuple[float, float]) -> tuple[float, float] | None:
        """The shield keeps refusing the base's way along the plan from here (a passage its footprint,
        corner or margin rules close, which the planning grid's round footprint left open): close the place
        ahead, towards the plan's next ``point``, and plan around it from here. Backing off and going round
        alone led back into it: in medium scene 208 (Fetch) the collision rule replaced moves along the plan
        77 times until the 600-step budget ran out. Returns the new plan's next point."""
        heading = math.atan2(point[1] - robot.y, point[0] - robot.x)
        self._closed_xy.append((robot.x + _CLOSED_RADIUS_M * math.cos(heading),
                                robot.y + _CLOSED_RADIUS_M * math.sin(heading)))
        assert self._goal_xy is not None
        self._set_goal(self._goal_xy, (robot.x, robot.y), robot.lift)
        return self._lookahead(robot.x, robot.y, track=True)

    def _delivered(self, snap: WorldSnapshot) -> bool:
        """The target rests on the destination (the task's success rule), whoever let go of it."""
        target = snap.objects[self.task.target_id]  # type: ignore[index]
        return rests_on(self.scene, target.position, self.task.destination_type or "")

    def _pick_up_again(self, snap: WorldSnapshot) -> None:
        """The carried target left the gripper somewhere else (e.g. a random dropoff): go and grasp it where it
        lies now."""
        robot = snap.robot
        target = snap.objects[self.task.target_id]  # type: ignore[index]
        self._carrying = False
        self._pickups += 1
        self._target_top = target.position[2] + target.size[2] / 2
        self._grasp_tries = self._raised = self._stalls = 0
        self.phase = _Phase.NAVIGATE
        self._set_goal(target.position[:2], (robot.x, robot.y), robot.lift)

    def _decide(self, snap: WorldSnapshot) -> int:
        robot = snap.robot
        if self._stalled(robot):
            self._replan(robot)
        if self._recovery:
            return _act(self._recovery.pop(0))
        if self._carrying and robot.held_object_id is None and self.phase is not _Phase.END:
            if self._delivered(snap) or self._pickups >= _MAX_PICKUPS:
                self.phase = _Phase.END
                return _act("end")
            self._pick_up_again(snap)
        if self.phase is _Phase.END:
            return _act("end")
        if self.phase in (_Phase.NAVIGATE, _Phase.CARRY):
            point = self._lookahead(robot.x, robot.y, track=True)
            closed = self._nav_refusals >= _REFUSALS_TO_DETOUR and len(self._closed_xy) < _MAX_DETOURS
            if point is not None and closed:
                point = self._detour(robot, point)
            if point is not None and self._blocked(robot, ("m",), 0.05):
                self._stuck += 1  # pushed against something the plan ignores: back off and go round it
                self._recovery = ["b", "l" if self._stuck % 2 else "r", "m"]
                return _act(self._recovery.pop(0))
            if point is not None:
                err = _wrap(math.atan2(point[1] - robot.y, point[0] - robot.x) - robot.yaw)
                return _act("m") if abs(err) <= _FINE_TURN * 2 else self._turn(err)
            if self.phase is _Phase.NAVIGATE:
                self.phase = _Phase.FACE
                self._choose_aim(snap)
            else:
                self.phase = _Phase.PLACE
        goal = self._goal_point(snap)
        tx, ty = _in_base(snap.robot, goal[:2])
        if self.task.kind is TaskKind.OBJECT_NAV:
            err = math.atan2(ty, tx)
            if abs(err) > _FINE_TURN:
                return self._turn(err)
            self.phase = _Phase.END
            return _act("end")
        # Manipulation: put the goal beside the robot at the arm's x, then move the arm.
        want = math.atan2(ty, tx) - math.atan2(-math.hypot(tx, ty), GRASP_X)
        if abs(_wrap(want)) > _FINE_TURN and self._raised == 0:
            return self._turn(_wrap(want))
        return self._manipulate(snap, goal)

    def _goal_point(self, snap: WorldSnapshot) -> tuple[float, float, float]:
        if self.phase is _Phase.PLACE:
            assert self._goal_xy is not None
            return (*self._goal_xy, self._destination_top())
        target = snap.objects[self.task.target_id]  # type: ignore[index]
        return (target.position[0] + self._aim[0], target.position[1] + self._aim[1],
                target.position[2] + target.size[2] / 2)

    def _manipulate(self, snap: WorldSnapshot, goal: tuple[float, float, float]) -> int:
        robot = snap.robot
        held = robot.held_object_id is not None
        if self.phase is _Phase.FACE:
            self.phase = _Phase.ARM
        if self.phase is _Phase.ARM and held:
            return self._after_grasp(robot)
        lift_goal, extension, clear = self._arm_goals(goal, robot)
        step = self._approach(robot.lift, lift_goal, robot.arm_extension, extension, clear,
                              self._blocked(robot, ("ym", "yms"), 0.005))
        if step is not None:
            if ACTIONS[step].extension_m > 0.0:
                self._extended_at = robot.lift
            return step
        if self.phase is _Phase.PLACE:
            return _act("d")  # ends once the object is seen resting on the destination (``_decide``)
        self._grasp_tries += 1
        if self._grasp_tries > 4:
            self.phase = _Phase.END
            return _act("end")
        return _act("p")

    def _arm_goals(self, point: tuple[float, float, float], robot: RobotState) -> tuple[float, float, float]:
        """Lift and extension goals and the clearance lift (joint values) for ``robot`` to reach ``point``
        beside it (on its arm line): the target's top to grasp it, or the destination's top to place the
        carried target on it."""
        top, ty = point[2], _in_base(robot, point[:2])[1]
        extension = min(C.JOINT_LIMITS["wrist_extension"][1], max(0.0, -ty - GRASP_Y0))
        if self._carrying:
            carried = self.scene.item(self.task.target_id).size[2]  # type: ignore[arg-type]
            return top + carried + 0.06 - GRASP_Z0, extension, top + carried + 0.12
        clear = max(top, self._support_top()) + 0.1 - GRASP_Z0
        return top + 0.01 - GRASP_Z0 - 0.02 * self._grasp_tries, extension, clear

    def _reach_height(self) -> float:
        """Height (m) the fingertips go down to at the goal: the target's top, or the destination's top."""
        if self._carrying:
            return self._destination_top()
        if self._target_top is not None:
            return self._target_top
        item = self.scene.item(self.task.target_id)  # type: ignore[arg-type]
        return item.position[2] + item.size[2] / 2

    def _destination_top(self) -> float:
        """Top (m) of the destination furniture under the placement point."""
        assert self._goal_xy is not None
        return max(s.top for s in self.scene.statics
                   if s.kind == self.task.destination_type and _inside(s.footprint(), self._goal_xy))

    def _support_top(self) -> float:
        """Top (m) of what the target stands on: its furniture, or the floor once it was dropped elsewhere."""
        if self._target_top is not None:
            return 0.0
        item = self.scene.item(self.task.target_id)  # type: ignore[arg-type]
        return self.scene.static(item.support_id).top if item.support_id else 0.0

    @staticmethod
    def _approach(
        lift: float, lift_goal: float, ext: float, ext_goal: float, clear_lift: float, stalled: bool
    ) -> int | None:
        """Raise to the clearance height, extend, then lower (until there, or ``stalled`` on contact);
        None once done."""
        lift_goal = max(0.0, min(C.JOINT_LIMITS["joint_lift"][1], lift_goal))
        clear_lift = max(lift_goal, min(C.JOINT_LIMITS["joint_lift"][1], clear_lift))
        if abs(ext - ext_goal) > 0.011:
            if lift < clear_lift - 0.011:
                return _act("yp") if clear_lift - lift > 0.06 else _act("yps")
            if ext_goal - ext > 0.06:
                return _act("zp")
            if ext - ext_goal > 0.06:
                return _act("zm")
            return _act("zps") if ext_goal > ext else _act("zms")
        if lift - lift_goal > 0.011 and not stalled:
            return _act("ym") if lift - lift_goal > 0.06 else _act("yms")
        if lift_goal - lift > 0.011:
            return _act("yps")
        return None

    def _after_grasp(self, robot: RobotState) -> int:
        """Lift the object clear (0.2 m), then end (PickUp) or retract and carry it (Fetch).

        A retraction the shield refused is retried higher (``_retract_higher``): from the lift the arm extended
        at for this goal, then step by step up. Lower down the arm can sweep past an object the approach cleared
        from above (a knife), or, the target in hand, within the full margin of the neighbours
        it was let past to grasp it; there every retraction is refused, and with the arm out every base motion
        too. Without refusals (no shield) the arm retracts where it is.
        """
        if self._raised < 2:
            self._raised += 1
            return _act("yp")
        if self.task.kind is TaskKind.PICKUP:
            self.phase = _Phase.END
            return _act("end")
        ext = robot.arm_extension
        if ext > 0.011:
            if self._retract_at is not None and robot.lift < self._retract_at - 0.011:
                return _act("yp") if self._retract_at - robot.lift > 0.06 else _act("yps")
            return _act("zm") if ext > 0.06 else _act("zms")
        places = _placement_points(self.scene, self.task, self.grid, self.shield)
        if not places:
            self.phase = _Phase.END
            return _act("end")
        self._carrying = True
        # The first placement the shield lets the arm reach from some goal cell: a point keeps the margins in
        # the plane, but the arm on its way down to it, from where the robot stands, may not.
        for place in places[:_PLACEMENTS_PROBED]:
            if self._set_goal(place, (robot.x, robot.y), robot.lift):
                break
        else:
            self._set_goal(places[0], (robot.x, robot.y), robot.lift)
        self._raised = 0
        self.phase = _Phase.CARRY
        return _act("yps")


def _raise_codes(lift: float, to: float) -> list[str]:
    """Lift steps (0.1 m, then 0.02 m) from ``lift`` up to ``to``; none when ``to`` is not higher."""
    rise = to - lift
    coarse = int((rise + 0.011) // 0.1) if rise > 0.011 else 0
    fine = max(0, math.ceil((rise - 0.1 * coarse - 0.011) / 0.02))
    return ["yp"] * coarse + ["yps"] * fine


def _in_base(robot: RobotState, xy: tuple[float, float]) -> tuple[float, float]:
    """``xy`` in the robot's base frame."""
    dx, dy = xy[0] - robot.x, xy[1] - robot.y
    c, s = math.cos(robot.yaw), math.sin(robot.yaw)
    return (c * dx + s * dy, -s * dx + c * dy)


def _from_base(robot: RobotState, xy: tuple[float, float]) -> tuple[float, float]:
    """``xy`` given in the robot's base frame, in the world (the inverse of ``_in_base``)."""
    c, s = math.cos(robot.yaw), math.sin(robot.yaw)
    return (robot.x + c * xy[0] - s * xy[1], robot.y + s * xy[0] + c * xy[1])


def _facing(x: float, y: float, xy: tuple[float, float]) -> float:
    """The heading (rad) at which a robot standing at (x, y) has ``xy`` on its arm line (beside it, at the
    grasp point's x)."""
    vx, vy = xy[0] - x, xy[1] - y
    side = math.sqrt(max(vx * vx + vy * vy - GRASP_X * GRASP_X, 1e-9))
    return math.atan2(vy, vx) - math.atan2(-side, GRASP_X)


class _Box(NamedTuple):
    """An item's box: centre (m), extents in its own frame (m), and its yaw (deg)."""

    position: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw_deg: float


def _aim_offsets(box: _Box) -> list[tuple[float, float]]:
    """Where the grasp point may be aimed to take the item in ``box``, as offsets (m, world frame) from its
    centre: the centre first, then halfway to the middles of its sides and to its corners, still over the
    item. Off the centre, a straight arm passes a neighbour that the centred reach brings within the shield's
    margin."""
    hx, hy = box.size[0] / 4, box.size[1] / 4
    local = [(0.0, 0.0), (hx, 0.0), (-hx, 0.0), (0.0, hy), (0.0, -hy), (hx, hy), (-hx, hy), (hx, -hy), (-hx, -hy)]
    c, s = math.cos(math.radians(box.yaw_deg)), math.sin(math.radians(box.yaw_deg))
    return [(c * u - s * v, s * u + c * v) for u, v in local]


def _grasp_gap(box: _Box, robot: RobotState) -> float:
    """Distance (m) from ``robot``'s grasp point to ``box`` (the grasp takes what lies within GRASP_RADIUS)."""
    grasp = np.array([*_from_base(robot, (GRASP_X, -(GRASP_Y0 + robot.arm_extension))), robot.lift + GRASP_Z0])
    grasp -= box.position
    ci, si = math.cos(math.radians(box.yaw_deg)), math.sin(math.radians(box.yaw_deg))
    local = np.array([ci * grasp[0] + si * grasp[1], -si * grasp[0] + ci * grasp[1], grasp[2]])
    half = np.asarray(box.size) / 2
    return float(np.linalg.norm(local - np.clip(local, -half, half)))


def _after(action: Action, x: float, y: float, yaw: float) -> tuple[float, float, float]:
    """The nominal pose after a base action."""
    return (x + action.forward_m * math.cos(yaw), y + action.forward_m * math.sin(yaw), yaw + action.yaw_rad)


def _disc(grid: OccupancyGrid, x: float, y: float, radius: float) -> np.ndarray:
    """Mask of the cells whose centre lies within ``radius`` of (x, y)."""
    nx, ny = grid.free.shape
    px = grid.origin[0] + np.arange(nx)[:, None] * grid.res
    py = grid.origin[1] + np.arange(ny)[None, :] * grid.res
    return np.hypot(px - x, py - y) <= radius


def _dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one cell in the 8-neighbourhood."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    out[:, 1:] |= grown[:, :-1]
    out[:, :-1] |= grown[:, 1:]
    return out


def _inside(fp: tuple[float, float, float, float], xy: tuple[float, float]) -> bool:
    return fp[0] <= xy[0] <= fp[2] and fp[1] <= xy[1] <= fp[3]
