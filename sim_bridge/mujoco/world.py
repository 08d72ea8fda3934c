"""Privileged ground truth of a running home: robot state, joint readings and ``WorldSnapshot``s.

Reported item poses have a small dead-band (``POSE_DEADBAND_M``/``_DEG``): items that are awake jitter by
micrometres on their contacts, and the step cost treats any change of a far object during warm-up as
"ignore for the episode", as AI2-THOR's sleeping rigid bodies never trigger it.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from safevla_node.safety.types import CollisionEvent, ObjectState, RobotState, WorldSnapshot
from sim_bridge.homegen import OccupancyGrid
from sim_bridge.interface import JOINT_NAMES
from sim_bridge.mujoco import stretch_constants as C
from sim_bridge.mujoco.model import SimModel
from sim_bridge.mujoco.sensors import visible_items

__all__ = ["REACHABLE_GRID_M", "REACHABLE_RADIUS_M", "VISIBILITY_DISTANCE_M", "WorldReader", "wrap_angle"]

#: Grid of the corner predicate's reachable points (AI2-THOR gridSize) and the radius they are reported in.
REACHABLE_GRID_M = 0.15
REACHABLE_RADIUS_M = 1.0
#: Objects farther than this from a camera are never "seen" (AI2-THOR GetVisibleObjects maxDistance).
VISIBILITY_DISTANCE_M = 4.0
POSE_DEADBAND_M = 0.002
POSE_DEADBAND_DEG = 0.5

Pose = tuple[tuple[float, float, float], tuple[float, float, float]]


def wrap_angle(angle: float) -> float:
    """``angle`` in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _euler_deg(quat: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in degrees of a MuJoCo (w, x, y, z) quaternion."""
    w, x, y, z = (float(q) for q in quat)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return (math.degrees(roll), math.degrees(pitch), math.degrees(yaw))


class WorldReader:
    """Reads one episode's ground truth; snapshots are cached per simulation instant."""

    def __init__(self, sim: SimModel, camera_size: tuple[int, int]) -> None:
        self.sim = sim
        self.camera_size = camera_size
        x, y, _ = sim.scene.robot_start
        grid = OccupancyGrid.from_scene(sim.scene, REACHABLE_GRID_M, C.FOOTPRINT_RADIUS)
        self.reachable = grid.points(grid.reachable_from(x, y))
        self._reported: dict[int, Pose] = {}
        self._cache: tuple[float, WorldSnapshot, dict[int, float]] | None = None

    def invalidate(self) -> None:
        """Forget the cached snapshot (the next read recomputes even if time has not moved)."""
        self._cache = None

    def joints(self) -> dict[str, float]:
        """Joint positions by interface name (the aperture is the sum of both fingers' travel)."""
        d, qpos = self.sim.data, self.sim.robot.joint_qpos
        return {name: sum(float(d.qpos[a]) for a in qpos[name]) for name in JOINT_NAMES}

    def robot_state(self, held: int | None) -> RobotState:
        """Base pose from the planar joints plus the arm joints."""
        d, q = self.sim.data, self.sim.robot.base_qpos
        joints = self.joints()
        return RobotState(
            x=float(d.qpos[q]),
            y=float(d.qpos[q + 1]),
            yaw=wrap_angle(float(d.qpos[q + 2])),
            footprint_radius=C.FOOTPRINT_RADIUS,
            lift=joints["joint_lift"],
            arm_extension=joints["wrist_extension"],
            wrist_yaw=joints["joint_wrist_yaw"],
            gripper_aperture=joints["gripper_aperture"],
            held_object_id=self.sim.scene.items[held].item_id if held is not None else None,
        )

    def _pose(self, k: int) -> Pose:
        """Item pose with the dead-band applied (see the module docstring)."""
        body = self.sim.item_body[k]
        pos = tuple(float(v) for v in self.sim.data.xpos[body])
        rot = _euler_deg(self.sim.data.xquat[body])
        last = self._reported.get(k)
        if last is not None:
            moved = max(abs(a - b) for a, b in zip(pos, last[0]))
            turned = max(min(abs(a - b) % 360, 360 - abs(a - b) % 360) for a, b in zip(rot, last[1]))
            if moved <= POSE_DEADBAND_M and turned <= POSE_DEADBAND_DEG:
                return last
        pose: Pose = (pos, rot)  # type: ignore[assignment]
        self._reported[k] = pose
        return pose

    def read(
        self, held: int | None, collision: CollisionEvent | None
    ) -> tuple[WorldSnapshot, dict[int, float]]:
        """The snapshot now and the navigation camera's visible items (item index -> distance, m)."""
        sim = self.sim
        if self._cache is not None and self._cache[0] == sim.data.time:
            return self._cache[1], self._cache[2]
        mujoco.mj_forward(sim.model, sim.data)
        w, h = self.camera_size
        nav = visible_items(sim, sim.robot.nav_camera, w, h, VISIBILITY_DISTANCE_M)
        seen = set(nav) | set(visible_items(sim, sim.robot.manip_camera, w, h, VISIBILITY_DISTANCE_M))
        robot = self.robot_state(held)
        objects = []
        for k, item in enumerate(sim.scene.items):
            pos, rot = self._pose(k)
            objects.append(
                ObjectState(
                    object_id=item.item_id, object_type=item.kind, position=pos, rotation_deg=rot,
                    size=item.size, name=item.name, visible=k in seen, held=k == held, unstable=item.unstable,
                )
            )
        objects += [
            ObjectState(box.box_id, box.kind, box.center, size=box.size, name=box.box_id, static=True)
            for box in sim.scene.statics
        ]
        pts = self.reachable
        near = np.hypot(pts[:, 0] - robot.x, pts[:, 1] - robot.y) <= REACHABLE_RADIUS_M
        snap = WorldSnapshot.of(
            float(sim.data.time), robot, objects, collision=collision,
            seen_ids=frozenset(sim.scene.items[k].item_id for k in seen), reachable_xy=pts[near],
        )
        self._cache = (float(sim.data.time), snap, nav)
        return snap, nav
