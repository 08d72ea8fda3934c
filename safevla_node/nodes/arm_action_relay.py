"""Relay the monitor's arm trajectories to a FollowJointTrajectory action server (the Stretch driver's).

The safety monitor publishes checked arm goals as ``trajectory_msgs/JointTrajectory`` on
``arm_controller/joint_trajectory`` (a topic, so it works with any controller and in simulation). The Stretch
driver takes arm motion through the ``control_msgs/action/FollowJointTrajectory`` action
``/stretch_controller/follow_joint_trajectory`` (REFERENCE.md section 3). This node sends each trajectory as a
goal and cancels the goal in flight when a newer one arrives, so the monitor's "hold at the current
positions" (its stop) preempts a running arm motion at once.

Needs ``control_msgs`` (part of a ROS 2 desktop install; not available as a PyPI wheel). The stack starts this
node only where ``control_msgs`` is importable (``requires`` in ``config/stack.yaml``).
"""

from __future__ import annotations

import sys
from typing import Any

from rclpy.action import ActionClient
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from trajectory_msgs.msg import JointTrajectory

from safevla_node.nodes.node_main import run_node

__all__ = ["ArmActionRelay", "main"]

NODE_NAME = "arm_action_relay"
ACTION_NAME = "/stretch_controller/follow_joint_trajectory"


class ArmActionRelay(Node):
    """Subscribes ``arm_controller/joint_trajectory``; sends goals to ``ACTION_NAME`` (remappable parameter)."""

    def __init__(self, follow_joint_trajectory: Any) -> None:
        super().__init__(NODE_NAME)
        self._action_type = follow_joint_trajectory
        self._action_name = self.declare_parameter("action_name", ACTION_NAME).value
        self._client = ActionClient(self, follow_joint_trajectory, self._action_name)
        self._goal_handle: Any = None
        self.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self._on_trajectory,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.get_logger().info(f"relaying arm_controller/joint_trajectory to {self._action_name}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not self._client.server_is_ready():
            self.get_logger().error(f"{self._action_name} is not available: trajectory dropped",
                                    throttle_duration_sec=2.0)
            return
        if self._goal_handle is not None:
            self._goal_handle.cancel_goal_async()
        goal = self._action_type.Goal()
        goal.trajectory = msg
        self._client.send_goal_async(goal).add_done_callback(self._on_goal_response)

    def _on_goal_response(self, future: Any) -> None:
        handle = future.result()
        if not handle.accepted:
            self.get_logger().error("arm trajectory goal rejected by the controller")
            return
        self._goal_handle = handle


def main(args: list[str] | None = None) -> int:
    """Run the relay; exit status 1 when control_msgs is not installed."""
    try:
        from control_msgs.action import FollowJointTrajectory
    except ImportError:
        get_logger(NODE_NAME).fatal("control_msgs is not installed: install ros-$ROS_DISTRO-control-msgs "
                                    "(it comes with a ROS 2 desktop install) to drive the Stretch arm")
        return 1
    return run_node(lambda: ArmActionRelay(FollowJointTrajectory), NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
