"""Baseline for bench_monitor_latency: the smallest possible rclpy relay, cmd_vel_in -> cmd_vel.

Same QoS as the safety monitor (reliable, depth 10), no checks, no timer: whatever the monitor adds over
this is the cost of its decisions.
"""

from __future__ import annotations

import rclpy
from geometry_msgs.msg import Twist
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class Relay(Node):
    """Republishes every Twist unchanged."""

    def __init__(self) -> None:
        super().__init__("twist_relay")
        self._pub = self.create_publisher(Twist, "cmd_vel", 10)
        self.create_subscription(Twist, "cmd_vel_in", self._pub.publish, 10)


def main(args: list[str] | None = None) -> None:
    """Spin the relay until Ctrl-C."""
    rclpy.init(args=args)
    try:
        rclpy.spin(Relay())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
