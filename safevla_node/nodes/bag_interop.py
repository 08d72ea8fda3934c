"""What the recorder and replayer nodes share: message classes by type name and QoS <-> bag QoS.

rosbags and rclpy number QoS policies the same way (both mirror rmw's enums), so conversion is by value.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

__all__ = ["import_message_type", "publisher_qos", "subscriber_qos", "to_bag_qos"]

#: Queue depth when a bag recorded none (rosbag2 v4/v5 bags often have an empty QoS field).
DEFAULT_DEPTH = 10


def import_message_type(msgtype: str) -> type | None:
    """The installed rclpy class of ``pkg/msg/Type``, or None when its package is not installed here."""
    pkg, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def _qos_time(duration: Duration) -> QosTime:
    sec, nsec = divmod(duration.nanoseconds, 1_000_000_000)
    return QosTime(sec, nsec)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """A publisher's offered QoS as rosbag2 metadata stores it."""
    return Qos(
        history=QosHistory(int(profile.history)),
        depth=profile.depth,
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=_qos_time(profile.deadline),
        lifespan=_qos_time(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions,
    )


def publisher_qos(recorded: Sequence[Qos]) -> QoSProfile:
    """QoS to replay a topic with: what its recorded publishers offered, made compatible with all of them.

    Best effort only when every recorded publisher was best effort (sensor streams); transient local only
    when every one was (latched topics such as /tf_static); otherwise reliable, volatile. No record (empty
    QoS in old bags) gives the ROS default (reliable, volatile, depth 10).
    """
    if not recorded:
        return QoSProfile(depth=DEFAULT_DEPTH)
    best_effort = all(q.reliability is QosReliability.BEST_EFFORT for q in recorded)
    latched = all(q.durability is QosDurability.TRANSIENT_LOCAL for q in recorded)
    depth = max([q.depth for q in recorded if q.history is QosHistory.KEEP_LAST] or [DEFAULT_DEPTH])
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(depth, 1),
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def subscriber_qos(offered: Sequence[QoSProfile], depth: int = 100) -> QoSProfile:
    """QoS to record a topic with, matching every current publisher (like rosbag2's adaptive QoS).

    Reliable only if all publishers are reliable (a reliable reader would not match a best-effort writer);
    transient local only if all are, so latched messages are received too.
    """
    reliable = bool(offered) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )
