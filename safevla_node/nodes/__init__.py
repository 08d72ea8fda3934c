"""Thin rclpy adapters: the only package that imports rclpy.

``conversions`` turns messages into core types and back (shared by every node and the bag audit),
``params`` declares config dataclasses as ROS parameters, and one module per node wires a core to topics.
"""

__all__: list[str] = []
