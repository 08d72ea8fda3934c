"""Thin rclpy adapters: the only place rclpy and ROS message packages are imported."""
