"""Publish zero velocity for a moment, then exit: the launcher's last word when a node of the stack dies.

The safety monitor's deadman already stops the base when the policy dies; this covers the monitor itself
dying (its last command would otherwise stand until the driver's own timeout). On a Stretch it also calls the
driver's ``/stop_the_robot`` service when it is there.
"""

from __future__ import annotations

import time

import rclpy
from geometry_msgs.msg import Twist
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_srvs.srv import Trigger

__all__ = ["main"]

#: How long zeros are published after the latest subscriber matched.
PUBLISH_FOR_S = 1.0
#: How long to wait for discovery to match a subscriber (a fresh participant needs a moment), and how long
#: later matches may keep extending the publishing.
MATCH_TIMEOUT_S = 3.0
PERIOD_S = 0.05


def main(args: list[str] | None = None) -> None:
    """Publish zero Twists on ``cmd_vel`` for PUBLISH_FOR_S after the last subscriber matched and call
    ``/stop_the_robot``."""
    rclpy.init(args=args)  # plain call: on Humble, init() returns no context manager
    node = Node("stop_robot")
    try:
        publisher = node.create_publisher(Twist, "cmd_vel", 10)
        stop_service = node.create_client(Trigger, "/stop_the_robot")
        start = time.monotonic()
        while publisher.get_subscription_count() == 0 and time.monotonic() < start + MATCH_TIMEOUT_S:
            rclpy.spin_once(node, timeout_sec=PERIOD_S)
        # Discovery matches subscribers one by one (the base driver, a logger, a bridge): each one that
        # appears, until MATCH_TIMEOUT_S after the first, still gets PUBLISH_FOR_S of zeros.
        deadline = time.monotonic() + PUBLISH_FOR_S
        matched = publisher.get_subscription_count()
        extend_until = time.monotonic() + MATCH_TIMEOUT_S
        called = False
        while time.monotonic() < deadline:
            now = time.monotonic()
            if publisher.get_subscription_count() > matched and now < extend_until:
                matched = publisher.get_subscription_count()
                deadline = now + PUBLISH_FOR_S
            publisher.publish(Twist())
            if not called and stop_service.service_is_ready():
                stop_service.call_async(Trigger.Request())
                called = True
            rclpy.spin_once(node, timeout_sec=PERIOD_S)
        node.get_logger().warning(
            f"published zero velocity to {publisher.get_subscription_count()} subscriber(s) after a node of the "
            "stack stopped")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()

if __name__ == "__main__":
    main()
