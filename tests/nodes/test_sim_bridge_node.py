"""The sim_bridge node as its own process over DDS: sensors flow on the robot's topics, a Twist moves the
robot, bad commands never reach the physics, primitives close cost steps, and episodes reset."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState, LaserScan
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from safevla_node.nodes import conversions as conv
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from tests.ros_harness import NodeProcess, RosTestClient, ros_client, running_node

MODULE = "safevla_node.nodes.sim_bridge"
PARAMS = {"task": "pickup", "seed": 3, "camera_width": 128, "camera_height": 96, "camera_rate_hz": 5.0}


class Recorder:
    """Keeps every message of a topic."""

    def __init__(self, client: RosTestClient, msg_type: type, topic: str, qos=qos_profile_sensor_data) -> None:
        self.messages: list = []
        client.node.create_subscription(msg_type, topic, self.messages.append, qos)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory) -> Iterator[tuple[NodeProcess, RosTestClient, dict[str, Recorder]]]:
    from safevla_node.dds import DomainLease

    with DomainLease() as lease, running_node(MODULE, lease, params=PARAMS) as node, ros_client(lease) as client:
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        topics = {
            "clock": Recorder(client, Clock, "/clock", reliable),
            "image": Recorder(client, Image, "camera/color/image_raw"),
            "info": Recorder(client, CameraInfo, "camera/color/camera_info"),
            "gripper": Recorder(client, Image, "gripper_camera/color/image_raw"),
            "depth": Recorder(client, Image, "camera/aligned_depth_to_color/image_raw"),
            "odom": Recorder(client, Odometry, "odom"),
            "joints": Recorder(client, JointState, "joint_states"),
            "scan": Recorder(client, LaserScan, "scan"),
            "objects": Recorder(client, MarkerArray, "safevla/objects"),
            "cost": Recorder(client, DiagnosticStatus, "safevla/step_cost", reliable),
            "status": Recorder(client, String, "safevla/episode_status", reliable),
            "instruction": Recorder(client, String, "safevla/instruction", QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)),
        }
        client.spin_until(lambda: all(r.messages for n, r in topics.items() if n != "cost"), timeout=30,
                          message="every sensor topic of the bridge")
        yield node, client, topics


def test_sensors_flow_on_the_robot_topic_names_in_sim_time(bridge):
    node, client, topics = bridge
    client.spin_for(1.0)
    image = topics["image"].messages[-1]
    assert (image.width, image.height, image.encoding) == (128, 96, "rgb8")
    assert conv.rgb_from_msg(image).std() > 0.0, "camera image is constant"
    assert topics["info"].messages[-1].k[0] > 0.0
    assert conv.depth_from_msg(topics["depth"].messages[-1], topics["info"].messages[-1],
                               "camera_color_optical_frame").depth_m.shape == (96, 128)
    scan = conv.scan_from_msg(topics["scan"].messages[-1], "laser")
    assert len(scan.ranges) == 360
    assert {"joint_lift", "wrist_extension", "joint_wrist_yaw"} <= set(conv.joint_state_from_msg(
        topics["joints"].messages[-1]))
    assert conv.objects_from_msg(topics["objects"].messages[-1], "odom")
    clock = [conv.time_to_seconds(m.clock) for m in topics["clock"].messages]
    assert clock == sorted(clock)
    assert conv.time_to_seconds(topics["odom"].messages[-1].header.stamp) <= clock[-1] + 1e-9
    assert "pick up" in topics["instruction"].messages[-1].data.lower()


def _pose(topics):
    return conv.odom_from_msg(topics["odom"].messages[-1], "odom", "base_link")


def _forward_since(start, topics) -> float:
    """Distance travelled along the start heading."""
    now = _pose(topics)
    return (now.x - start.x) * math.cos(start.yaw) + (now.y - start.y) * math.sin(start.yaw)


def test_a_twist_moves_the_robot_and_stops_at_the_deadman(bridge):
    node, client, topics = bridge
    pub = client.node.create_publisher(Twist, "cmd_vel", 10)
    start = _pose(topics)
    forward = Twist()
    forward.linear.x = 0.2
    for _ in range(20):
        pub.publish(forward)
        client.spin_for(0.05)
    client.spin_for(1.0)  # command timeout 0.5 s: the base must have stopped
    moved = _forward_since(start, topics)
    assert 0.1 < moved < 0.5, f"moved {moved:.3f} m for ~1 s at 0.2 m/s"
    velocity = conv.odom_from_msg(topics["odom"].messages[-1], "odom", "base_link").linear_x
    assert abs(velocity) < 0.02


def test_a_nan_twist_is_rejected_and_never_reaches_the_physics(bridge):
    node, client, topics = bridge
    pub = client.node.create_publisher(Twist, "cmd_vel", 10)
    start = _pose(topics)
    bad = Twist()
    bad.linear.x = float("nan")
    for _ in range(10):
        pub.publish(bad)
        client.spin_for(0.05)
    client.spin_for(0.5)
    assert abs(_forward_since(start, topics)) < 0.01
    assert "rejected cmd_vel" in node.output() and "not finite" in node.output()


def test_a_finished_primitive_closes_one_cost_step(bridge):
    node, client, topics = bridge
    pub = client.node.create_publisher(String, "safevla/primitive_status", 10)
    before = json.loads(topics["status"].messages[-1].data)["steps"]
    client.spin_for(0.3)  # let the publisher match
    pub.publish(conv.primitive_status_to_msg(PrimitiveStatus(PrimitivePhase.DONE, 1, 0, 0, "arrived")))
    client.spin_until(lambda: topics["cost"].messages, timeout=5, message="safevla/step_cost")
    assert {kv.key for kv in topics["cost"].messages[-1].values} >= {"total", "corner", "blind_spot", "fragile",
                                                                     "critical", "danger"}
    client.spin_until(lambda: json.loads(topics["status"].messages[-1].data)["steps"] == before + 1, timeout=5,
                      message="episode step count incremented")


def test_reset_service_starts_a_new_episode_and_republishes_the_instruction(bridge):
    node, client, topics = bridge
    service = client.node.create_client(Trigger, "/sim_bridge/reset")
    assert service.wait_for_service(timeout_sec=10)
    future = service.call_async(Trigger.Request())
    client.spin_until(future.done, timeout=30, message="~/reset answered")
    assert future.result().success, future.result().message
    client.spin_until(lambda: json.loads(topics["status"].messages[-1].data)["episode"] == 2, timeout=5,
                      message="episode 2 reported")
    status = json.loads(topics["status"].messages[-1].data)
    assert status["steps"] == 0 and status["task"] == "pickup"


def test_an_invalid_parameter_stops_the_bridge_at_start_up_naming_it(ros_domain):
    node = NodeProcess(MODULE, ros_domain, params={"task": "teleport"})
    assert node.proc.wait(timeout=60) == 1
    node.stop()
    assert "task='teleport' is not one of" in node.output()
