"""Recorder node: subscribe raw to the stack's topics and hand the bytes to ``BagRecorder``.

Topics are discovered periodically, so publishers that start after the recorder are picked up. Each
topic is subscribed with ``raw=True`` (no deserialisation) and a QoS matching its current publishers;
their offered QoS goes into the bag. SIGINT and SIGTERM shut rclpy down (its default signal handlers),
``spin`` returns, and the ``with BagRecorder`` block finalises the last split and the metadata.

Run: ``safevla record -o BAG`` or ``ros2 run safevla_node recorder --ros-args -p output:=BAG``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from safevla_node.bags.reader import normalize_topic
from safevla_node.bags.writer import BagRecorder, RecordConfig
from safevla_node.nodes.bag_interop import import_message_type, subscriber_qos, to_bag_qos

__all__ = ["CAMERA_TOPICS", "DEFAULT_TOPICS", "RecorderNode", "main", "run"]

#: What the SafeVLA stack publishes and a safety review needs.
DEFAULT_TOPICS: tuple[str, ...] = (
    "/cmd_vel", "/cmd_vel_in", "/scan", "/odom", "/joint_states",
    "/safevla/action_proposal", "/safevla/safety_state", "/safevla/objects",
    "/arm_controller/joint_trajectory", "/clock", "/diagnostics",
)
#: Stretch cameras, opt-in (they dominate bag size).
CAMERA_TOPICS: tuple[str, ...] = (
    "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw",
    "/gripper_camera/color/image_rect_raw", "/navigation_camera/image_raw",
)


class RecorderNode(Node):
    """Subscribes to the wanted topics as they appear and writes every message to the recorder.

    Args:
        recorder: an open ``BagRecorder``.
        topics: absolute topic names to record, or None for every topic in the graph.
        discovery_period_s: how often the graph is scanned for new topics.
    """

    def __init__(self, recorder: BagRecorder, topics: Sequence[str] | None,
                 discovery_period_s: float = 0.2) -> None:
        super().__init__("safevla_recorder")
        self._recorder = recorder
        self._wanted = None if topics is None else {normalize_topic(t) for t in topics}
        self._raw_subs: dict[str, object] = {}
        self._ignored: set[str] = set()
        self.create_timer(discovery_period_s, self._discover)
        self._discover()

    def _discover(self) -> None:
        for name, types in self.get_topic_names_and_types():
            if name in self._raw_subs or name in self._ignored:
                continue
            if self._wanted is not None and name not in self._wanted:
                continue
            publishers = self.get_publishers_info_by_topic(name)
            if not publishers:
                continue  # only subscribers so far: the offered QoS is not known yet
            self._subscribe(name, types[0], [p.qos_profile for p in publishers])

    def _subscribe(self, name: str, msgtype: str, offered: list) -> None:
        msg_class = import_message_type(msgtype)
        if msg_class is None:
            self.get_logger().warning(f"not recording {name}: message package of {msgtype} is not installed")
            self._ignored.add(name)
            return
        if not self._recorder.add_topic(name, msgtype, [to_bag_qos(q) for q in offered]):
            self.get_logger().warning(f"not recording {name}: no message definition for {msgtype}")
            self._ignored.add(name)
            return
        self._raw_subs[name] = self.create_subscription(
            msg_class, name, partial(self._on_message, name), subscriber_qos(offered), raw=True)
        self.get_logger().info(f"recording {name} ({msgtype})")

    def _on_message(self, topic: str, raw: bytes) -> None:
        self._recorder.write(topic, self.get_clock().now().nanoseconds, raw)


def run(config: RecordConfig, topics: Sequence[str] | None, args: list[str] | None = None) -> int:
    """Record until SIGINT/SIGTERM; returns the process exit code (0: bag finalised)."""
    rclpy.init(args=args)
    try:
        with BagRecorder(config) as recorder:
            node = RecorderNode(recorder, topics)
            try:
                rclpy.spin(node)
            except (KeyboardInterrupt, ExternalShutdownException):
                pass
            finally:
                node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return 0


def main(args: list[str] | None = None) -> None:
    """``ros2 run`` entry point: parameters output, storage, compression, topics (empty: defaults; ``['*']``:
    all), max_split_bytes, max_split_duration_s."""
    rclpy.init(args=args)
    probe = Node("safevla_recorder_params")
    defaults = RecordConfig(output="unset")
    values = {
        "output": probe.declare_parameter("output", "").value,
        "storage": probe.declare_parameter("storage", defaults.storage).value,
        "compression": probe.declare_parameter("compression", defaults.compression).value,
        "max_split_bytes": probe.declare_parameter("max_split_bytes", defaults.max_split_bytes).value,
        "max_split_duration_s": probe.declare_parameter("max_split_duration_s", defaults.max_split_duration_s).value,
    }
    topics = list(probe.declare_parameter("topics", [""]).value or [])
    probe.destroy_node()
    rclpy.shutdown()
    topics = [t for t in topics if t]
    chosen = None if topics == ["*"] else (topics or list(DEFAULT_TOPICS))
    raise SystemExit(run(RecordConfig(**values), chosen, args=args))


if __name__ == "__main__":
    main()
