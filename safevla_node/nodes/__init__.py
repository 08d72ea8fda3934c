"""ROS 2 nodes: thin rclpy adapters over the cores (the only package that imports rclpy)."""
