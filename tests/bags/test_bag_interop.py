"""Replay publishes with QoS compatible with every recorded publisher; the recorder subscribes compatibly."""

from __future__ import annotations

from geometry_msgs.msg import Twist
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from safevla_node.nodes.bag_interop import import_message_type, publisher_qos, subscriber_qos, to_bag_qos

FOREVER = QosTime(9223372036, 854775807)


def _recorded(reliability: QosReliability, durability: QosDurability, depth: int = 5) -> Qos:
    return Qos(QosHistory.KEEP_LAST, depth, reliability, durability, FOREVER, FOREVER, QosLiveliness.AUTOMATIC,
               FOREVER, False)


def test_bag_without_recorded_qos_replays_with_the_ros_default():
    qos = publisher_qos(())
    assert (qos.reliability, qos.durability, qos.depth) == (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, 10)


def test_all_best_effort_publishers_replay_best_effort_with_their_depth():
    qos = publisher_qos([_recorded(QosReliability.BEST_EFFORT, QosDurability.VOLATILE, depth=5)] * 2)
    assert (qos.reliability, qos.depth) == (ReliabilityPolicy.BEST_EFFORT, 5)


def test_mixed_reliability_replays_reliable_which_serves_both():
    qos = publisher_qos([_recorded(QosReliability.BEST_EFFORT, QosDurability.VOLATILE),
                         _recorded(QosReliability.RELIABLE, QosDurability.VOLATILE)])
    assert qos.reliability == ReliabilityPolicy.RELIABLE


def test_latched_topics_replay_transient_local_only_when_every_publisher_was():
    latched = _recorded(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL)
    assert publisher_qos([latched]).durability == DurabilityPolicy.TRANSIENT_LOCAL
    volatile = _recorded(QosReliability.RELIABLE, QosDurability.VOLATILE)
    assert publisher_qos([latched, volatile]).durability == DurabilityPolicy.VOLATILE


def test_unknown_history_from_discovery_falls_back_to_the_default_depth():
    recorded = Qos(QosHistory.UNKNOWN, 0, QosReliability.RELIABLE, QosDurability.VOLATILE, FOREVER, FOREVER,
                   QosLiveliness.AUTOMATIC, FOREVER, False)
    assert publisher_qos([recorded]).depth == 10


def test_recorder_subscribes_best_effort_when_any_publisher_is():
    reliable = QoSProfile(depth=10)
    assert subscriber_qos([reliable]).reliability == ReliabilityPolicy.RELIABLE
    assert subscriber_qos([reliable, qos_profile_sensor_data]).reliability == ReliabilityPolicy.BEST_EFFORT
    assert subscriber_qos([]).reliability == ReliabilityPolicy.BEST_EFFORT


def test_offered_qos_converts_to_bag_qos_by_policy_value():
    profile = QoSProfile(depth=7, reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL, deadline=Duration(seconds=1, nanoseconds=5))
    qos = to_bag_qos(profile)
    assert (qos.depth, qos.reliability, qos.durability, qos.deadline) == (
        7, QosReliability.BEST_EFFORT, QosDurability.TRANSIENT_LOCAL, QosTime(1, 5))


def test_message_classes_are_imported_by_type_name_and_missing_packages_give_none():
    assert import_message_type("geometry_msgs/msg/Twist") is Twist
    assert import_message_type("nav2_msgs/msg/Costmap") is None
    assert import_message_type("geometry_msgs/msg/NoSuchType") is None
