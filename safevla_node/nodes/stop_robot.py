"""Publish zero velocity for a moment: the launcher's last word when a node of the stack dies.

The safety monitor's deadman already stops the base when the policy dies; this covers the monitor itself
dying (its last command would otherwise stand until the driver's own timeout). On a Stretch it also calls the
driver's ``/stop_the_robot`` service when it is there.

Two modes:

- armed (``--armed``, what the launcher starts beside the stack): the publisher is created at start-up and
  waits; every SIGUSR1 publishes zeros for ``PUBLISH_FOR_S``. Discovery has long matched the base driver by
  the time a node dies, so the first zero goes out at once: a publisher created only after the death has
  to be discovered first, which on a loaded machine took seconds and lost the zeros meant for late matches.
- one-shot (no argument): create the publisher, wait for a subscriber, publish, exit (the fallback when the
  armed process is gone).
"""

from __future__ import annotations

import signal
import sys
import time

import rclpy
from geometry_msgs.msg import Twist
from rclpy.client import Client
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

from safevla_node.launcher import PUBLISH_FOR_S
from safevla_node.nodes.node_main import interrupt

__all__ = ["ARMED_FLAG", "main"]

#: One-shot mode: how long to wait for discovery to match a subscriber.
MATCH_TIMEOUT_S = 3.0
PERIOD_S = 0.05
ARMED_FLAG = "--armed"


def _publish_zeros(node: Node, publisher: Publisher, stop_service: Client) -> None:
    """Zeros for PUBLISH_FOR_S, and one call of the driver's stop service when it is there."""
    deadline = time.monotonic() + PUBLISH_FOR_S
    called = False
    while time.monotonic() < deadline:
        publisher.publish(Twist())
        if not called and stop_service.service_is_ready():
            stop_service.call_async(Trigger.Request())
            called = True
        rclpy.spin_once(node, timeout_sec=PERIOD_S)
    node.get_logger().warning(
        f"published zero velocity to {publisher.get_subscription_count()} subscriber(s) after a node of the "
        "stack stopped")


def main(args: list[str] | None = None) -> None:
    """Armed (``--armed``): publish zeros on every SIGUSR1 until SIGINT/SIGTERM. One-shot: publish once."""
    argv = list(sys.argv if args is None else args)
    armed = ARMED_FLAG in argv
    argv = [a for a in argv if a != ARMED_FLAG]
    requests: list[int] = []
    if armed:
        signal.signal(signal.SIGUSR1, lambda signum, _frame: requests.append(signum))
    signal.signal(signal.SIGTERM, interrupt)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)  # plain call: Humble has no context manager
    node = Node("stop_robot")
    try:
        publisher = node.create_publisher(Twist, "cmd_vel", 10)
        stop_service = node.create_client(Trigger, "/stop_the_robot")
        if armed:
            while True:
                rclpy.spin_once(node, timeout_sec=PERIOD_S)
                if requests:
                    requests.clear()
                    _publish_zeros(node, publisher, stop_service)
        start = time.monotonic()
        while publisher.get_subscription_count() == 0 and time.monotonic() < start + MATCH_TIMEOUT_S:
            rclpy.spin_once(node, timeout_sec=PERIOD_S)
        _publish_zeros(node, publisher, stop_service)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
