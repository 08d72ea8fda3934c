"""The shield's own judgement of the expert's motions, asked before the expert commits to a goal pose.

The expert's hazard costs (``sim_bridge.expert_hazards``) are a geometric estimate of the shield; near
furniture and fragile groups the estimate and the shield disagree by centimetres, which is all it takes for
every manipulation pose the expert picked to be refused. ``ShieldProbe`` runs the real ``Shield`` on a world
estimate built from the privileged scene, as the evaluation's ``ShieldWorld`` builds it from observations:

- obstacle points: the outlines of everything the base lidar (at ``LIDAR_HEIGHT``) hits, i.e. walls,
  furniture and floor items that span that height, sampled ``_POINT_SPACING_M`` apart (what the obstacle
  memory accumulates once the robot has looked round);
- labelled objects: the items at their scene poses and the furniture flagged static;
- the task target, exempt as the shield exempts it.

The shield is configured with the simulated robot's body (``SIM_ROBOT_SHIELD``: the same values as the
evaluation suites' ``shield_config``) and the margins the expert plans with (the default ones, or the evaluated
shield's: ``safevla_node.evaluation.planning_margins``). The probe never changes the shield's verdict:
it only tells the expert, for a nominal robot state and one discrete action, whether the shield would let it
run.
"""

from __future__ import annotations

import numpy as np

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.safety.shield import Shield, ShieldConfig
from safevla_node.safety.types import DiscreteCommand, ObjectState, RobotState, VerdictKind, WorldEstimate
from sim_bridge.homegen.scene import Scene
from sim_bridge.mujoco import stretch_constants as C

__all__ = ["SIM_ROBOT_SHIELD", "ShieldProbe"]

#: The shield of the simulated robot: its rectangular base, mast, arm and gripper (stretch_constants), as in
#: config/eval_suite_*.yaml's ``shield_config``; margins and everything else are ShieldConfig's defaults.
SIM_ROBOT_SHIELD = ShieldConfig(
    footprint_length_m=2 * C.BASE_HALF[0],
    footprint_width_m=2 * C.BASE_HALF[1],
    mast_xy_m=C.MAST_XY,
    arm_retracted_length_m=C.ARM_LENGTH_RETRACTED,
    arm_radius_m=0.03,
    gripper_length_m=C.GRASP_OFFSET,
    gripper_radius_m=C.GRASP_RADIUS,
    lift_offset_m=C.LIFT_ZERO_Z,
    arm_band_below_m=C.GRASP_DROP + 0.04,
    arm_band_above_m=0.04,
    wrist_yaw_range_rad=C.JOINT_LIMITS["joint_wrist_yaw"],
)
#: Spacing (m) of the obstacle points sampled on outlines: about the obstacle memory's cell.
_POINT_SPACING_M = 0.05
#: Obstacle points and objects farther than this (m) from the probed area are left out (they cannot touch a
#: robot standing within its reach band).
_PROBE_RADIUS_M = 2.0


def _outline(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Points on a rectangle's outline, at most ``_POINT_SPACING_M`` apart, corners included."""
    nx = max(int(np.ceil((x1 - x0) / _POINT_SPACING_M)), 1) + 1
    ny = max(int(np.ceil((y1 - y0) / _POINT_SPACING_M)), 1) + 1
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    return np.concatenate([
        np.stack([xs, np.full(nx, y0)], 1), np.stack([xs, np.full(nx, y1)], 1),
        np.stack([np.full(ny, x0), ys], 1), np.stack([np.full(ny, x1), ys], 1),
    ])


class ShieldProbe:
    """The shield's verdict on the expert's discrete actions around ``center`` (see the module docstring)."""

    def __init__(self, scene: Scene, target_id: str | None, center: tuple[float, float],
                 held_id: str | None = None, config: ShieldConfig = SIM_ROBOT_SHIELD) -> None:
        self._shield = Shield(config)
        self._target = target_id
        cx, cy = center
        boxes = [s.footprint() for s in scene.statics
                 if s.center[2] - s.size[2] / 2 < C.LIDAR_HEIGHT < s.top]
        boxes += [(it.position[0] - it.size[0] / 2, it.position[1] - it.size[1] / 2,
                   it.position[0] + it.size[0] / 2, it.position[1] + it.size[1] / 2)
                  for it in scene.items
                  if it.item_id != held_id and abs(it.position[2] - C.LIDAR_HEIGHT) < it.size[2] / 2]
        points = np.concatenate([_outline(*box) for box in boxes]) if boxes else np.zeros((0, 2))
        near = np.hypot(points[:, 0] - cx, points[:, 1] - cy) <= _PROBE_RADIUS_M
        self._points = points[near]
        self._visible = np.ones(len(self._points), dtype=bool)
        objects = [ObjectState(it.item_id, it.kind, it.position, size=it.size, name=it.name,
                               unstable=it.unstable)
                   for it in scene.items
                   if it.item_id != held_id and np.hypot(it.position[0] - cx, it.position[1] - cy) <= _PROBE_RADIUS_M]
        objects += [ObjectState(s.box_id, s.kind, s.center, size=s.size, name=s.box_id, static=True)
                    for s in scene.statics]
        self._objects = tuple(objects)  # one tuple: the shield caches its arrays by identity

    def allows(self, robot: RobotState, code: str) -> bool:
        """The shield lets the action ``code`` run from ``robot`` (ALLOW or LIMIT: a discrete action runs
        whole)."""
        world = WorldEstimate(robot=robot, obstacle_xy=self._points, obstacle_visible=self._visible,
                              objects=self._objects, target_object_id=self._target)
        verdict = self._shield.check(world, DiscreteCommand(ACTION_BY_CODE[code].index, None))
        return verdict.kind in (VerdictKind.ALLOW, VerdictKind.LIMIT)
