"""Decoded bag messages (rosbags objects) -> the monitor core's input types, without a ROS install.

``safevla_node.nodes.conversions`` does the same for rclpy messages, but it imports the ROS message
packages, which the audit must not need. The checks mirror it (non-finite values, inconsistent scan
geometry, non-unit quaternions and bad array sizes raise ``MessageError``, which the audit feeds to the
monitor as a malformed input, as the node would) with one deliberate difference: frame ids are not
enforced, because bags from other robots use their own names (``base_scan``, ``base_footprint``); the audit
report lists the frames it saw instead.

``costmap_to_scan`` turns a robot-centred ``nav2_msgs/Costmap`` into the planar scan the monitor's obstacle
memory takes: one beam per angular bin, ranged to the nearest lethal cell, so its lethal cells become
obstacle points and cells that are no longer lethal are cleared along the empty beams.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from safevla_node.errors import MessageError
from safevla_node.safety.monitor_types import OdometryData
from safevla_node.safety.types import TwistCommand
from sim_bridge.interface import LaserScanData

__all__ = ["LETHAL_COST", "costmap_to_scan", "joints_from_msg", "odom_from_msg", "scan_from_msg", "stamp_s",
           "twist_from_msg"]

#: nav2_costmap_2d's LETHAL_OBSTACLE; 253 (inscribed) is inflation, not an obstacle.
LETHAL_COST = 254
_COSTMAP_BEAMS = 720


def _finite(where: str, *values: float) -> None:
    for value in values:
        if not math.isfinite(value):
            raise MessageError(f"{where} is not finite: {value!r}")


def stamp_s(msg: Any) -> float:
    """A message's header stamp (s); sim time in simulated recordings, unlike the bag's receive time."""
    return float(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)


def twist_from_msg(msg: Any, duration: float) -> TwistCommand:
    """The base command of a geometry_msgs/Twist.

    Raises:
        MessageError: a component is NaN or infinite.
    """
    _finite("twist", msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)
    return TwistCommand(float(msg.linear.x), float(msg.angular.z), duration)


def scan_from_msg(msg: Any) -> LaserScanData:
    """A sensor_msgs/LaserScan as the monitor's scan (non-finite ranges are legal, REP-117).

    Raises:
        MessageError: non-finite or inconsistent geometry, or as many ranges as the angles do not imply.
    """
    _finite("scan angle/range fields", msg.angle_min, msg.angle_max, msg.angle_increment, msg.range_min,
            msg.range_max)
    if msg.angle_increment == 0.0 or not 0.0 <= msg.range_min < msg.range_max:
        raise MessageError(f"scan geometry invalid: angle_increment={msg.angle_increment}, "
                           f"range_min={msg.range_min}, range_max={msg.range_max}")
    ranges = np.asarray(msg.ranges, dtype=np.float32)
    expected = round((msg.angle_max - msg.angle_min) / msg.angle_increment) + 1
    if ranges.size != expected:
        raise MessageError(f"scan has {ranges.size} ranges but its angles imply {expected}")
    return LaserScanData(float(msg.angle_min), float(msg.angle_increment), float(msg.range_min),
                         float(msg.range_max), ranges)


def odom_from_msg(msg: Any) -> OdometryData:
    """Planar pose and body velocity of a nav_msgs/Odometry.

    Raises:
        MessageError: non-finite values or a non-unit orientation.
    """
    p, q, v = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    _finite("odometry pose/twist", p.x, p.y, p.z, v.linear.x, v.angular.z, q.x, q.y, q.z, q.w)
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > 1e-3:
        raise MessageError(f"odometry orientation is not a unit quaternion (norm {norm:.6f})")
    yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
    return OdometryData(float(p.x), float(p.y), yaw, float(v.linear.x), float(v.angular.z))


def joints_from_msg(msg: Any) -> Mapping[str, float]:
    """Joint positions by name of a sensor_msgs/JointState.

    Raises:
        MessageError: duplicate names, a position count that differs from the names, non-finite positions.
    """
    names = list(msg.name)
    if len(set(names)) != len(names):
        raise MessageError(f"joint_states names are not unique: {names}")
    positions = np.asarray(msg.position, dtype=float)
    if positions.size != len(names):
        raise MessageError(f"joint_states has {positions.size} positions for {len(names)} names")
    _finite("joint_states positions", *positions)
    return dict(zip(names, positions.tolist()))


def costmap_to_scan(msg: Any, beams: int = _COSTMAP_BEAMS) -> LaserScanData:
    """The lethal cells of a robot-centred nav2_msgs/Costmap as a full-circle scan from the frame origin.

    Raises:
        MessageError: the data size does not match size_x * size_y, or the geometry is not finite/positive.
    """
    meta = msg.metadata
    res, nx, ny = float(meta.resolution), int(meta.size_x), int(meta.size_y)
    ox, oy = float(meta.origin.position.x), float(meta.origin.position.y)
    _finite("costmap resolution/origin", res, ox, oy)
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
