"""What the bag audit reads beyond the shared message readers.

Scans, odometry, twists and joint states are read with ``safevla_node.msg_decode``, the same checks the
nodes run (rosbags' decoded messages have the rclpy field names), with one deliberate difference: frame ids
are not enforced (``expected_frame=None``), because bags from other robots use their own names
(``base_scan``, ``base_footprint``); the audit report lists the frames it saw instead.

``costmap_to_scan`` turns a robot-centred ``nav2_msgs/Costmap`` into the planar scan the monitor's obstacle
memory takes: one beam per angular bin, ranged to the nearest lethal cell, so its lethal cells become
obstacle points and cells that are no longer lethal are cleared along the empty beams.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from safevla_node.errors import MessageError
from safevla_node.msg_decode import check_finite
from sim_bridge.interface import LaserScanData

__all__ = ["LETHAL_COST", "costmap_to_scan", "stamp_s"]

#: nav2_costmap_2d's LETHAL_OBSTACLE; 253 (inscribed) is inflation, not an obstacle.
LETHAL_COST = 254
_COSTMAP_BEAMS = 720


def stamp_s(msg: Any) -> float:
    """A message's header stamp (s); sim time in simulated recordings, unlike the bag's receive time."""
    return float(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)


def costmap_to_scan(msg: Any, beams: int = _COSTMAP_BEAMS) -> LaserScanData:
    """The lethal cells of a robot-centred nav2_msgs/Costmap as a full-circle scan from the frame origin.

    Raises:
        MessageError: the data size does not match size_x * size_y, or the geometry is not finite/positive.
    """
    meta = msg.metadata
    res, nx, ny = float(meta.resolution), int(meta.size_x), int(meta.size_y)
    ox, oy = float(meta.origin.position.x), float(meta.origin.position.y)
    check_finite("costmap resolution/origin", res, ox, oy)
    if res <= 0.0:
        raise MessageError(f"costmap resolution must be positive, got {res!r}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if data.size != nx * ny:
        raise MessageError(f"costmap has {data.size} cells, its metadata says {nx} x {ny}")
    rows, cols = np.divmod(np.flatnonzero(data >= LETHAL_COST), nx)
    x, y = ox + (cols + 0.5) * res, oy + (rows + 0.5) * res
    increment = 2.0 * math.pi / beams
    range_max = math.hypot(max(abs(ox), abs(ox + nx * res)), max(abs(oy), abs(oy + ny * res))) + res
    ranges = np.full(beams, np.inf, dtype=np.float32)
    if x.size:
        beam = np.rint((np.arctan2(y, x) + math.pi) / increment).astype(np.int64) % beams
        np.minimum.at(ranges, beam, np.hypot(x, y).astype(np.float32))
    return LaserScanData(-math.pi, increment, 0.0, range_max, ranges)
