"""Replayer node: publish a bag's raw CDR bytes on the schedule ``ReplayPlan`` computes.

One publisher per played topic, with the recorded QoS and the message class of the installed package; a
type that is not installed here (``nav2_msgs/msg/Costmap``, ``gazebo_msgs/...``) is skipped with a
warning naming topic and type. Publishing happens in a plain loop paced by ``Pacer`` (no executor is
needed to publish); SIGINT/SIGTERM shut rclpy down, which the loop notices within ``Pacer.poll_s``.

Run: ``safevla replay BAG [--rate R] [--loop] [--clock [HZ]] [--topics T...] [--remap a:=b] [--start-offset S]``.
"""

from __future__ import annotations

import time

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.publisher import Publisher

from safevla_node.bags.reader import open_bag
from safevla_node.bags.replay import Pacer, ReplayConfig, ReplayPlan
from safevla_node.nodes.bag_interop import import_message_type, publisher_qos
from safevla_node.nodes.shutdown import ends_on_shutdown

__all__ = ["ReplayerNode", "run"]


class ReplayerNode(Node):
    """Owns the publishers of one replay and plays its plan."""

    def __init__(self, plan: ReplayPlan, context: Context | None = None) -> None:
        super().__init__("safevla_replayer", context=context)
        self._plan = plan
        #: how late each publication started against its deadline (s), for the end-of-replay summary.
        self.lateness_s: list[float] = []
        self.publishers_by_topic: dict[str, Publisher] = {}
        for topic, msgtype in plan.publishers().items():
            msg_class = import_message_type(msgtype)
            if msg_class is None:
                self.get_logger().warning(
                    f"skipping {topic}: message type {msgtype} is not installed here "
                    f"(install the {msgtype.split('/')[0]} package to replay it)")
                continue
            self.publishers_by_topic[topic] = self.create_publisher(
                msg_class, topic, publisher_qos(plan.qos.get(topic, ())))

    def wait_for_subscribers(self, timeout_s: float) -> list[str]:
        """Block until every publisher has a matched subscription, at most ``timeout_s``; returns the topics
        still without one (messages published before a subscriber matches are lost to it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [t for t, p in self.publishers_by_topic.items() if p.get_subscription_count() == 0]
            if not missing or time.monotonic() >= deadline or not self.context.ok():
                return missing
            time.sleep(0.02)

    def play(self, pacer: Pacer) -> int:
        """Publish every event at its deadline; returns the number published (stops on shutdown)."""
        published = 0
        pacer.start()
        for event in self._plan.events():
            publisher = self.publishers_by_topic.get(event.topic)
            if publisher is None:
                continue
            lateness = pacer.wait_until(event.offset_s, cancelled=lambda: not self.context.ok())
            if lateness is None:
                break
            publisher.publish(event.raw)
            self.lateness_s.append(lateness)
            published += 1
        return published


def run(bag_path: str, config: ReplayConfig, delay_s: float = 0.0, wait_for_subscribers_s: float = 0.0,
        args: list[str] | None = None) -> int:
    """Replay ``bag_path`` until its end (or forever under ``loop``, until SIGINT/SIGTERM); exit code 0.

    Before the first message, wait up to ``wait_for_subscribers_s`` for every played topic to have a
    subscriber, then ``delay_s`` more (``ros2 bag play --delay``), so nothing is published into an
    undiscovered graph.

    Raises:
        BagError: the bag cannot be read or a requested topic is not in it.
    """
    with open_bag(bag_path) as bag:
        plan = ReplayPlan(bag, config)
        rclpy.init(args=args)
        try:
            node = ReplayerNode(plan)
            try:
                with ends_on_shutdown():
                    missing = node.wait_for_subscribers(wait_for_subscribers_s) if wait_for_subscribers_s > 0 else []
                    if missing:
                        node.get_logger().warning(f"no subscriber after {wait_for_subscribers_s:g} s on {missing}")
                    time.sleep(delay_s)
                    count = node.play(Pacer())
                    late_ms = sorted(node.lateness_s)[int(0.99 * (count - 1))] * 1e3 if count else 0.0
                    node.get_logger().info(
                        f"replayed {count} messages from {bag_path} (pacing lateness p99 {late_ms:.2f} ms)")
            finally:
                node.destroy_node()
        finally:
            rclpy.try_shutdown()
    return 0
