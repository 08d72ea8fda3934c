"""Robot sensors on a compiled home: RGB-D cameras, the planar lidar and geometric object visibility.

Rays (lidar, visibility) skip the robot's own geoms by geom group; cameras render them (the gripper is in
the manipulation camera's view, as on the real robot).
"""

from __future__ import annotations

import math
import weakref

import mujoco
import numpy as np

from sim_bridge.interface import CameraFrame, LaserScanData, float32_exact
from sim_bridge.mujoco import stretch_constants as C
from sim_bridge.mujoco.model import SimModel

__all__ = ["CameraRig", "Lidar", "camera_pose_in_base", "visible_items"]

#: Geom groups rays may hit: static world and items, never the robot.
RAY_GROUPS = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)
#: Robot camera axes -> REP-103 body axes (x forward = -z_cam, y left = -x_cam, z up = y_cam).
_CAM_TO_BODY = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]).T


def _euler_zyx(rot: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) of a rotation matrix, ZYX convention."""
    pitch = math.asin(max(-1.0, min(1.0, -rot[2, 0])))
    return (math.atan2(rot[2, 1], rot[2, 2]), pitch, math.atan2(rot[1, 0], rot[0, 0]))


def camera_pose_in_base(sim: SimModel, cam_id: int) -> tuple[float, float, float, float, float, float]:
    """Camera (x, y, z, roll, pitch, yaw) in base_link, REP-103 body axes (x along the optical axis)."""
    d = sim.data
    base = sim.robot.base_body
    rb = d.xmat[base].reshape(3, 3)
    rc = d.cam_xmat[cam_id].reshape(3, 3)
    p = rb.T @ (d.cam_xpos[cam_id] - d.xpos[base])
    rot = rb.T @ rc @ _CAM_TO_BODY.T
    return (float(p[0]), float(p[1]), float(p[2]), *_euler_zyx(rot))


class CameraRig:
    """Offscreen renderer for the two robot cameras at one resolution."""

    def __init__(self, sim: SimModel, width: int, height: int, depth: bool) -> None:
        self.sim = sim
        self.width, self.height, self.depth = width, height, depth
        self.renderer = mujoco.Renderer(sim.model, height=height, width=width)
        # Freed on close, garbage collection or interpreter exit (before OSMesa's own teardown).
        self._free = weakref.finalize(self, self.renderer.close)
        self.option = mujoco.MjvOption()
        self.option.geomgroup[C.ROBOT_GROUP] = 1
        self.fy = (height / 2) / math.tan(math.radians(C.CAMERA_FOVY_DEG) / 2)

    def render(self, cam_id: int) -> CameraFrame:
        """RGB (and depth in m if enabled) from camera ``cam_id`` at the current state."""
        r = self.renderer
        r.update_scene(self.sim.data, camera=cam_id, scene_option=self.option)
        rgb = r.render().copy()
        depth = None
        if self.depth:
            r.enable_depth_rendering()
            depth = r.render().astype(np.float32)
            r.disable_depth_rendering()
        return CameraFrame(
            rgb=rgb,
            depth=depth,
            fx=self.fy,
            fy=self.fy,
            cx=(self.width - 1) / 2,
            cy=(self.height - 1) / 2,
            pose_in_base=camera_pose_in_base(self.sim, cam_id),
        )

    def close(self) -> None:
        """Free the GL context (idempotent)."""
        self._free()


class Lidar:
    """A planar 360-degree scan at the lidar site's height (counter-clockwise from -pi)."""

    def __init__(self, sim: SimModel, beams: int = 360, range_max: float = 10.0) -> None:
        self.sim = sim
        self.beams = beams
        self.range_max = range_max
        # Cast where the scan says the beams are: its fields are float32 (LaserScanData), and the obstacle
        # memory places beam i at angle_min + i * angle_increment.
        self.angle_min = float32_exact(-math.pi)
        self.angle_increment = float32_exact(2 * math.pi / beams)
        self.angles = self.angle_min + self.angle_increment * np.arange(beams)
        self._vec = np.zeros(3 * beams)
        self._geom = np.zeros(beams, dtype=np.int32)
        self._dist = np.zeros(beams)

    def scan(self, yaw: float) -> LaserScanData:
        """Cast every beam from the lidar site; no return is inf."""
        d = self.sim.data
        world = self.angles + yaw
        vec = self._vec.reshape(-1, 3)
        vec[:, 0], vec[:, 1], vec[:, 2] = np.cos(world), np.sin(world), 0.0
        mujoco.mj_multiRay(
            self.sim.model, d, d.site_xpos[self.sim.robot.lidar_site], self._vec, RAY_GROUPS, 1, -1,
            self._geom, self._dist, None, self.beams, self.range_max,
        )
        ranges = np.where(self._dist < 0, np.inf, self._dist)
        return LaserScanData(self.angle_min, self.angle_increment, 0.05, self.range_max, ranges)


def visible_items(sim: SimModel, cam_id: int, width: int, height: int, max_dist: float) -> dict[int, float]:
    """Items (index -> distance from the camera, m) inside the camera's frustum, within ``max_dist``, and
    not occluded: a ray to the item's centre, top, or left/right edge (as seen from the camera) hits the
    item first."""
    m, d = sim.model, sim.data
    pos = d.cam_xpos[cam_id]
    rot = d.cam_xmat[cam_id].reshape(3, 3)
    fy = (height / 2) / math.tan(math.radians(float(m.cam_fovy[cam_id])) / 2)
    centres = d.xpos[sim.item_body]
    rel = (centres - pos) @ rot  # camera frame, looking along -z
    depth = -rel[:, 2]
    dist = np.linalg.norm(centres - pos, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = fy * rel[:, 0] / depth + width / 2
        v = -fy * rel[:, 1] / depth + height / 2
    in_image = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    candidates = np.flatnonzero((depth > 0.05) & (dist <= max_dist) & in_image)
    geom = np.zeros(1, dtype=np.int32)
    out: dict[int, float] = {}
    side = rot[:, 0]  # the camera's right axis in the world
    for k in candidates:
        half = float(m.geom_rbound[sim.item_geom[k]]) * 0.5
        c = centres[k]
        for target in (c, c + np.array([0.0, 0.0, half]), c + half * side, c - half * side):
            vec = target - pos
            length = float(np.linalg.norm(vec))
            hit = mujoco.mj_ray(m, d, pos, vec / length, RAY_GROUPS, 1, -1, geom)
            if geom[0] == sim.item_geom[k] or hit < 0 or hit >= length - 0.02:
                out[int(k)] = float(dist[k])
                break
    return out
