"""SafeVLA ROS 2 stack.

Layout: ``safety/`` (cost predicates, predictive shield, fail-safe monitor core), ``nodes/`` (thin rclpy
adapters, the only place rclpy is imported), ``actions`` (the SafeVLA discrete action vocabulary),
``config`` (YAML configs as validated frozen dataclasses), ``dds`` (loopback-only DDS environment).
Simulators live in the top-level ``sim_bridge`` package and the VLA model in ``policies``.
"""

__all__: list[str] = []
