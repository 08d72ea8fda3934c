"""Obstacle memory: a sparse rolling grid of obstacle cells in odom that outlives the sensors' field of view.

The shield needs obstacles the robot cannot see right now (behind it, under the camera, beside the arm):
SafeVLA's blind-spot cost is exactly a collision with something seen before but not visible now. Cells hit
by the laser scan or the depth camera are stored with their last-seen time and which sensor saw them in its
latest update. A scan ray that passes through a remembered cell clears it (the obstacle moved); cells
outside the current field of view are kept until ``decay_s`` and dropped when farther than ``radius_m``.
Depth rays do not clear: their 3-D rays pass over low obstacles that a 2-D grid cannot tell apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safevla_node.config import check_range, field
from safevla_node.errors import ConfigError, MessageError
from safevla_node.safety.types import RobotState

__all__ = ["ObstacleMemory", "ObstacleMemoryConfig", "check_scan"]

_SCAN_BIT = np.uint8(1)
_DEPTH_BIT = np.uint8(2)
_KEY_SHIFT = np.int64(1) << np.int64(31)  # cell keys pack (ix, iy) as ix * 2^31 + iy + 2^30


@dataclass(frozen=True)
class ObstacleMemoryConfig:
    """Grid and sensor-filter settings of the obstacle memory."""

    resolution_m: float = field(0.05, "cell size (m); points are reported at cell centres")
    radius_m: float = field(4.0, "rolling window around the robot (m): farther cells are dropped")
    decay_s: float = field(10.0, "remembered cells not seen for longer than this are forgotten (s)")
    depth_stride: int = field(4, "use every n-th depth pixel in both directions")
    depth_min_height_m: float = field(0.05, "depth points below this height in base_link are floor (m)")
    depth_max_height_m: float = field(2.0, "depth points above this height in base_link are ignored (m)")
    depth_max_range_m: float = field(3.5, "depth beyond this range is too noisy to store (m)")

    def __post_init__(self) -> None:
        check_range("resolution_m", self.resolution_m, 1e-3, 1.0)
        check_range("radius_m", self.radius_m, self.resolution_m, 100.0)
        check_range("decay_s", self.decay_s, 1e-3, None)
        check_range("depth_stride", self.depth_stride, 1, None)
        check_range("depth_max_range_m", self.depth_max_range_m, 1e-3, None)
        if not self.depth_min_height_m < self.depth_max_height_m:
            raise ConfigError(
                f"depth_min_height_m={self.depth_min_height_m!r} must be below "
                f"depth_max_height_m={self.depth_max_height_m!r}"
            )


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll) (REP-103 fixed-axis roll, pitch, yaw)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _check_pose(name: str, values: tuple[float, ...]) -> None:
    if not all(math.isfinite(v) for v in values):
        raise MessageError(f"{name} must be finite, got {values!r}; drop the message")


def check_scan(angle_min: float, angle_increment: float, range_min: float, range_max: float) -> None:
    """Reject a scan whose geometry cannot be placed (an owner that stores a scan for later checks it first).

    Raises:
        MessageError: non-finite angles or limits, zero increment, or range_min >= range_max.
    """
    _check_pose("scan angles and range limits", (angle_min, angle_increment, range_min, range_max))
    if angle_increment == 0.0 or not 0.0 <= range_min < range_max:
        raise MessageError(
            f"scan needs angle_increment != 0 and 0 <= range_min < range_max, got increment "
            f"{angle_increment!r}, range_min {range_min!r}, range_max {range_max!r}"
        )


class ObstacleMemory:
    """Fuses laser scans and depth images into remembered obstacle cells. Not thread-safe: one owner."""

    def __init__(self, config: ObstacleMemoryConfig = ObstacleMemoryConfig()) -> None:
        self.config = config
        self.clear()

    def clear(self) -> None:
        """Forget every cell."""
        self._keys = np.zeros(0, dtype=np.int64)  # sorted
        self._stamps = np.zeros(0)
        self._seen = np.zeros(0, dtype=np.uint8)  # bit per sensor: hit by that sensor's latest update

    def __len__(self) -> int:
        return len(self._keys)

    def reconfigure(self, config: ObstacleMemoryConfig) -> None:
        """Apply a new configuration and keep what is remembered: changing a parameter at run time must not
        erase obstacles only the memory still knows (out of view, or seen by depth alone). At a new
        resolution each cell moves to the cell of its centre, with the newest stamp and every sensor bit of
        the cells that land there."""
        old_resolution, self.config = self.config.resolution_m, config
        if config.resolution_m == old_resolution or not len(self._keys):
            return
        ix, iy = self._unpack(self._keys)
        centres = np.stack([(ix + 0.5) * old_resolution, (iy + 0.5) * old_resolution], axis=1)
        self._keys, inverse = np.unique(self._cells(centres), return_inverse=True)
        stamps, seen = self._stamps, self._seen
        self._stamps = np.full(len(self._keys), -np.inf)
        np.maximum.at(self._stamps, inverse, stamps)
        self._seen = np.zeros(len(self._keys), dtype=np.uint8)
        np.bitwise_or.at(self._seen, inverse, seen)

    # --- sensor input -------------------------------------------------------------------------------------

    def add_scan(
        self,
        stamp: float,
        robot: RobotState,
        ranges: np.ndarray,
        angle_min: float,
        angle_increment: float,
        range_min: float,
        range_max: float,
        sensor_xy_yaw: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> None:
        """Store a LaserScan taken at ``stamp`` with the base at ``robot``'s odom pose.

        Returns below ``range_min`` and NaN are ignored; +inf or beyond ``range_max`` means no return, which
        clears along the whole beam up to ``range_max``.

        Raises:
            MessageError: non-finite stamp/pose/angles, zero increment, or range_min >= range_max.
        """
        _check_pose("scan stamp, robot pose and sensor pose",
                    (stamp, robot.x, robot.y, robot.yaw, *sensor_xy_yaw))
        check_scan(angle_min, angle_increment, range_min, range_max)
        ranges = np.asarray(ranges, dtype=float).ravel()
        sx, sy, syaw = self._sensor_in_odom(robot, sensor_xy_yaw)
        angles = syaw + angle_min + angle_increment * np.arange(len(ranges))
        hit = np.isfinite(ranges) & (ranges >= range_min) & (ranges < range_max)
        free_range = np.where(hit, ranges, np.where(np.isnan(ranges) | (ranges < range_min), 0.0, range_max))
        self._clear_along_beams(sx, sy, syaw + angle_min, angle_increment, free_range)
        r, a = ranges[hit], angles[hit]
        points = np.stack([sx + r * np.cos(a), sy + r * np.sin(a)], axis=1)
        self._insert(stamp, points, _SCAN_BIT)
        self._forget(stamp, robot)

    def add_depth(
        self,
        stamp: float,
        robot: RobotState,
        depth_m: np.ndarray,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        camera_pose_in_base: tuple[float, float, float, float, float, float],
    ) -> None:
        """Store a depth image (metres; 0 or NaN = no data) taken at ``stamp`` with the base at ``robot``.

        Pixels follow the optical convention (z forward, x right, y down). ``camera_pose_in_base`` is
        (x, y, z, roll, pitch, yaw) of the camera's body frame (x forward, z up) in base_link, so
        (0, 0, 1.2, 0, 0.5, 0) is a camera 1.2 m up, pitched 0.5 rad down. Points outside the height band
        [depth_min_height_m, depth_max_height_m] of base_link or beyond ``depth_max_range_m`` are dropped.

        Raises:
            MessageError: a non-2-D image, non-positive focal lengths, or non-finite pose values.
        """
        _check_pose("depth stamp, robot pose, intrinsics and camera pose",
                    (stamp, robot.x, robot.y, robot.yaw, fx, fy, cx, cy, *camera_pose_in_base))
        depth = np.asarray(depth_m, dtype=float)
        if depth.ndim != 2 or fx <= 0.0 or fy <= 0.0:
            raise MessageError(f"depth needs a 2-D image and fx, fy > 0, got shape {depth.shape}, fx {fx!r}, "
                               f"fy {fy!r}")
        c = self.config
        v, u = np.mgrid[0 : depth.shape[0] : c.depth_stride, 0 : depth.shape[1] : c.depth_stride]
        z = depth[v, u]
        valid = np.isfinite(z) & (z > 0.0) & (z <= c.depth_max_range_m)
        z, u, v = z[valid], u[valid], v[valid]
        # optical (x right, y down, z forward) -> camera body (x forward, y left, z up)
        body = np.stack([z, -(u - cx) * z / fx, -(v - cy) * z / fy], axis=1)
        x, y, zc, roll, pitch, yaw = camera_pose_in_base
        base = body @ _rotation(roll, pitch, yaw).T + np.array([x, y, zc])
        keep = (base[:, 2] >= c.depth_min_height_m) & (base[:, 2] <= c.depth_max_height_m)
        cos, sin = math.cos(robot.yaw), math.sin(robot.yaw)
        bx, by = base[keep, 0], base[keep, 1]
        points = np.stack([robot.x + cos * bx - sin * by, robot.y + sin * bx + cos * by], axis=1)
        self._insert(stamp, points, _DEPTH_BIT)
        self._forget(stamp, robot)

    # --- output -------------------------------------------------------------------------------------------

    def snapshot(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) odom centres of occupied cells not older than ``decay_s`` at ``now``, and (N,) visible:
        True where the latest update of some sensor saw the cell, False where it is only remembered."""
        fresh = self._stamps >= now - self.config.decay_s
        ix, iy = self._unpack(self._keys[fresh])
        res = self.config.resolution_m
        xy = np.stack([(ix + 0.5) * res, (iy + 0.5) * res], axis=1)
        return xy, self._seen[fresh] != 0

    # --- internals ----------------------------------------------------------------------------------------

    @staticmethod
    def _sensor_in_odom(robot: RobotState, sensor: tuple[float, float, float]) -> tuple[float, float, float]:
        x, y, yaw = sensor
        c, s = math.cos(robot.yaw), math.sin(robot.yaw)
        return robot.x + c * x - s * y, robot.y + s * x + c * y, robot.yaw + yaw

    def _cells(self, points: np.ndarray) -> np.ndarray:
        idx = np.floor(points / self.config.resolution_m).astype(np.int64)
        return idx[:, 0] * _KEY_SHIFT + idx[:, 1] + (_KEY_SHIFT >> 1)

    @staticmethod
    def _unpack(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return keys // _KEY_SHIFT, keys % _KEY_SHIFT - (_KEY_SHIFT >> 1)

    def _insert(self, stamp: float, points: np.ndarray, bit: np.uint8) -> None:
        """Mark the cells of ``points`` seen at ``stamp`` by this sensor; its other cells lose the bit."""
        self._seen &= ~bit
        new = np.unique(self._cells(points)) if len(points) else np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(self._keys, new)
        found = pos < len(self._keys)
        found[found] = self._keys[pos[found]] == new[found]
        self._stamps[pos[found]] = np.maximum(self._stamps[pos[found]], stamp)
        self._seen[pos[found]] |= bit
        fresh = new[~found]
        keys = np.concatenate([self._keys, fresh])
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._stamps = np.concatenate([self._stamps, np.full(len(fresh), float(stamp))])[order]
        self._seen = np.concatenate([self._seen, np.full(len(fresh), bit, dtype=np.uint8)])[order]

    def _clear_along_beams(self, sx: float, sy: float, first_angle: float, increment: float,
                           free_range: np.ndarray) -> None:
        """Drop cells a beam passes through before its return (inverse raytrace over the stored cells).

        Each cell is tested against the beam nearest its bearing: it is crossed when the beam passes within
        half a cell of its centre and the cell lies at least one cell short of the return.
        """
        if not len(self._keys) or not len(free_range):
            return
        res = self.config.resolution_m
        ix, iy = self._unpack(self._keys)
        dx, dy = (ix + 0.5) * res - sx, (iy + 0.5) * res - sy
        rho = np.hypot(dx, dy)
        offset = _sweep_offset(np.arctan2(dy, dx) - first_angle, increment)
        beam = np.rint(offset / increment).astype(np.int64)
        if len(free_range) * abs(increment) >= 2.0 * math.pi - abs(increment) / 2.0:
            beam %= len(free_range)  # a full-circle scan: the last beam's neighbour is the first
        on_scan = (beam >= 0) & (beam < len(free_range))
        beam = np.clip(beam, 0, len(free_range) - 1)
        off_axis = rho * np.abs(np.sin(offset - beam * increment))
        crossed = on_scan & (off_axis <= res / 2.0) & (rho < free_range[beam] - res)
        if crossed.any():
            keep = ~crossed
            self._keys, self._stamps, self._seen = self._keys[keep], self._stamps[keep], self._seen[keep]

    def _forget(self, now: float, robot: RobotState) -> None:
        """Drop cells older than ``decay_s`` or outside the rolling window around the robot."""
        res = self.config.resolution_m
        ix, iy = self._unpack(self._keys)
        near = np.hypot((ix + 0.5) * res - robot.x, (iy + 0.5) * res - robot.y) <= self.config.radius_m
        keep = near & (self._stamps >= now - self.config.decay_s)
        if not keep.all():
            self._keys, self._stamps, self._seen = self._keys[keep], self._stamps[keep], self._seen[keep]


def _sweep_offset(angle: np.ndarray, increment: float) -> np.ndarray:
    """Angles shifted by whole turns into the scan's sweep direction: [0, 2 pi) for a positive increment,
    (-2 pi, 0] for a negative one, so beam indices count from the first beam."""
    turn = 2.0 * math.pi
    return np.mod(angle, turn) if increment > 0 else -np.mod(-angle, turn)
