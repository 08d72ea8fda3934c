"""Reading ROS messages by their fields, into core types: one set of checks for live and recorded data.

Nothing here imports a ROS package: the functions read attributes, so they take rclpy messages (nodes) and
rosbags' decoded messages (offline bag audit, no ROS install needed) alike. Every reader validates what it
reads and raises ``MessageError`` naming the field and the bad value (NaN/Inf, wrong array sizes, wrong
frames), so the caller can drop the message, count it and fail safe. Builders of messages live in
``safevla_node.nodes.conversions``, which re-exports these readers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from safevla_node.errors import MessageError
from safevla_node.safety.monitor_types import OdometryData
from safevla_node.safety.types import TwistCommand
from sim_bridge.interface import LaserScanData

__all__ = [
    "check_finite",
    "check_frame",
    "duration_to_seconds",
    "joint_state_from_msg",
    "odom_from_msg",
    "quaternion_to_rpy",
    "scan_from_msg",
    "time_to_seconds",
    "twist_from_msg",
]


def check_finite(where: str, *values: float) -> None:
    """Raise MessageError naming ``where`` if any value is NaN or infinite."""
    for value in values:
        if not math.isfinite(value):
            raise MessageError(f"{where} is not finite: {value!r}")


def check_frame(where: str, actual: str, expected: str | None) -> None:
    """Raise MessageError if ``actual`` is not the ``expected`` frame id (None: any frame)."""
    if expected is not None and actual != expected:
        raise MessageError(f"{where} is {actual!r}, expected {expected!r} (no tf2 here: publish in that "
                           "frame or set the frames.* parameter)")


def time_to_seconds(stamp: Any) -> float:
    """A builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def duration_to_seconds(duration: Any) -> float:
    """A builtin_interfaces/Duration as float seconds."""
    return duration.sec + duration.nanosec * 1e-9


def quaternion_to_rpy(q: Any, where: str = "orientation") -> tuple[float, float, float]:
    """Roll, pitch, yaw (rad) of a unit quaternion.

    Raises:
        MessageError: a non-finite or non-unit (|q| off 1 by more than 1e-3) quaternion.
    """
    check_finite(where, q.x, q.y, q.z, q.w)
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > 1e-3:
        raise MessageError(f"{where} is not a unit quaternion (norm {norm:.6f})")
    x, y, z, w = q.x / norm, q.y / norm, q.z / norm, q.w / norm
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


def twist_from_msg(msg: Any, duration: float = 0.5) -> TwistCommand:
    """A base twist (linear.x, angular.z; the other components of a differential base are ignored).

    Raises:
        MessageError: any of the six components is NaN or infinite.
    """
    check_finite("twist", msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)
    return TwistCommand(float(msg.linear.x), float(msg.angular.z), duration)


def scan_from_msg(msg: Any, expected_frame: str | None = None) -> LaserScanData:
    """A planar scan. Per REP-117, non-finite range entries are legal (no return / too close) and kept.

    Raises:
        MessageError: wrong frame, non-finite or inconsistent geometry (angle fields, range limits), or a
            ranges/intensities length that does not match the angles.
    """
    check_frame("scan frame_id", msg.header.frame_id, expected_frame)
    check_finite("scan angle/range fields", msg.angle_min, msg.angle_max, msg.angle_increment, msg.range_min,
                 msg.range_max)
    if msg.angle_increment == 0.0 or not 0.0 <= msg.range_min < msg.range_max:
        raise MessageError(f"scan geometry invalid: angle_increment={msg.angle_increment}, "
                           f"range_min={msg.range_min}, range_max={msg.range_max}")
    expected = round((msg.angle_max - msg.angle_min) / msg.angle_increment) + 1
    ranges = np.asarray(msg.ranges, dtype=np.float32)
    if ranges.size != expected:
        raise MessageError(f"scan has {ranges.size} ranges but its angles imply {expected}")
    if len(msg.intensities) not in (0, ranges.size):
        raise MessageError(f"scan has {len(msg.intensities)} intensities for {ranges.size} ranges")
    return LaserScanData(float(msg.angle_min), float(msg.angle_increment), float(msg.range_min),
                         float(msg.range_max), ranges)


def odom_from_msg(msg: Any, odom_frame: str | None = None, base_frame: str | None = None) -> OdometryData:
    """Planar pose and body velocity.

    Raises:
        MessageError: wrong frame or child frame, non-finite values, or a non-unit orientation.
    """
    check_frame("odometry frame_id", msg.header.frame_id, odom_frame)
    check_frame("odometry child_frame_id", msg.child_frame_id, base_frame)
    p, v = msg.pose.pose.position, msg.twist.twist
    check_finite("odometry pose/twist", p.x, p.y, p.z, v.linear.x, v.linear.y, v.angular.z)
    _, _, yaw = quaternion_to_rpy(msg.pose.pose.orientation, "odometry orientation")
    return OdometryData(float(p.x), float(p.y), yaw, float(v.linear.x), float(v.angular.z))


def joint_state_from_msg(msg: Any) -> dict[str, float]:
    """Joint positions by name.

    Raises:
        MessageError: duplicate names, position/velocity/effort arrays of the wrong length, non-finite
            positions.
    """
    names = list(msg.name)
    if len(set(names)) != len(names):
        raise MessageError(f"joint_states names are not unique: {names}")
    if len(msg.position) != len(names):
        raise MessageError(f"joint_states has {len(msg.position)} positions for {len(names)} names")
    for field_name in ("velocity", "effort"):
        if len(getattr(msg, field_name)) not in (0, len(names)):
            raise MessageError(f"joint_states has {len(getattr(msg, field_name))} {field_name} values "
                               f"for {len(names)} names")
    check_finite("joint_states positions", *msg.position)
    return {n: float(p) for n, p in zip(names, msg.position)}
