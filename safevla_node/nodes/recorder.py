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
from rclpy.node import Node

from safevla_node.bags.reader import normalize_topic
from safevla_node.bags.writer import BagRecorder, RecordConfig
from safevla_node.errors import SafeVLAError
from safevla_node.nodes.bag_interop import import_message_type, subscriber_qos, to_bag_qos
from safevla_node.nodes.shutdown import ends_on_shutdown

__all__ = ["CAMERA_TOPICS", "DEFAULT_TOPICS", "RecorderNode", "main", "run"]

#: What the SafeVLA stack publishes and a safety review needs.
DEFAULT_TOPICS: tuple[str, ...] = (
    "/cmd_vel", "/cmd_vel_in", "/scan", "/odom", "/joint_states",
    "/safevla/action_proposal", "/safevla/safety_state", "/safevla/objects",
    "/arm_controller/joint_trajectory", "/clock", "/diagnostics",
    "/safevla/primitive_status", "/safevla/step_cost", "/safevla/episode_status", "/safevla/instruction",
)
#: Stretch cameras, opt-in (they dominate bag size).
CAMERA_TOPICS: tuple[str, ...] = (
    "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw",
    "/gripper_camera/color/image_rect_raw", "/navigation_camera/image_raw",
)


class RecorderNode(Node):
    """Subscribes to the wanted topics as they appear and writes every message to the recorder.

    Its parameters (output, storage, compression, topics, max_split_bytes, max_split_duration_s) are read
    by ``config_from_parameters`` when it runs under ``ros2 run``; ``start`` begins recording.
    """

    def __init__(self, discovery_period_s: float = 0.2) -> None:
        super().__init__("safevla_recorder")
        defaults = RecordConfig(output="unset")
        for name in ("storage", "compression", "max_split_bytes", "max_split_duration_s"):
            self.declare_parameter(name, getattr(defaults, name))
        self.declare_parameter("output", "")
        self.declare_parameter("topics", [""])
        self._discovery_period_s = discovery_period_s
        self._recorder: BagRecorder | None = None
        self._wanted: set[str] | None = None
        self._raw_subs: dict[str, object] = {}
        self._ignored: set[str] = set()

    def config_from_parameters(self) -> tuple[RecordConfig, list[str] | None]:
        """The RecordConfig and topic list (None: all topics) given as ROS parameters.

        ``topics`` empty records ``DEFAULT_TOPICS``; ``['*']`` records every topic.
        """
        values = {name: self.get_parameter(name).value for name in
                  ("output", "storage", "compression", "max_split_bytes", "max_split_duration_s")}
        topics = [t for t in (self.get_parameter("topics").value or []) if t]
        return RecordConfig(**values), None if topics == ["*"] else (topics or list(DEFAULT_TOPICS))

    def start(self, recorder: BagRecorder, topics: Sequence[str] | None) -> None:
        """Record ``topics`` (absolute names; None: every topic of the graph) into the open ``recorder``."""
        self._recorder = recorder
        self._wanted = None if topics is None else {normalize_topic(t) for t in topics}
        self.create_timer(self._discovery_period_s, self._discover)
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
        assert self._recorder is not None
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
        assert self._recorder is not None
        self._recorder.write(topic, self.get_clock().now().nanoseconds, raw)


def _record(node: RecorderNode, config: RecordConfig, topics: Sequence[str] | None) -> int:
    """Spin ``node`` recording into a new bag until SIGINT/SIGTERM; the bag is finalised on the way out."""
    try:
        with BagRecorder(config) as recorder:
            node.start(recorder, topics)
            with ends_on_shutdown():
                rclpy.spin(node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run(config: RecordConfig, topics: Sequence[str] | None, args: list[str] | None = None) -> int:
    """Record until SIGINT/SIGTERM (``safevla record``); returns the exit code (0: bag finalised)."""
    rclpy.init(args=args)
    return _record(RecorderNode(), config, topics)


def main(args: list[str] | None = None) -> None:
    """``ros2 run safevla_node recorder --ros-args -p output:=BAG [-p topics:=[...]]``; a bad parameter or an
    existing output directory exits with status 1 and the reason."""
    rclpy.init(args=args)
    node = RecorderNode()
    logger = node.get_logger()
    try:
        config, topics = node.config_from_parameters()
    except SafeVLAError as exc:
        logger.error(str(exc))
        node.destroy_node()
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    try:
        code = _record(node, config, topics)  # cleans the node and rclpy up however it ends
    except SafeVLAError as exc:
        logger.error(str(exc))
        code = 1
    raise SystemExit(code)

if __name__ == "__main__":
    main()
