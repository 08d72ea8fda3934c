"""The sim_bridge node in discrete execution, as its own process over DDS: the task target is latched for
late subscribers, the monitor's acknowledgement of the reset (an IDLE status) shows in the episode status,
a monitor's deciding status executes the action whole (one cost step, odometry jumps, one
report on safevla/action_result stamped like the odometry after the jump; an ABORTED one for a proposal
past the step budget), and cmd_vel moves nothing."""

from __future__ import annotations

import json
import math

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String

from safevla_node.nodes import conversions as conv
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from sim_bridge.interface import TaskKind
from sim_bridge.registry import make_backend
from tests.ros_harness import ros_client, running_node

pytestmark = pytest.mark.ros

MODULE = "safevla_node.nodes.sim_bridge"
PARAMS = {"task": "pickup", "seed": 3, "render": False, "action_execution": "discrete", "real_time_factor": 5.0,
          "step_budget": 2}
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def position(odom: Odometry) -> tuple[float, float]:
    return odom.pose.pose.position.x, odom.pose.pose.position.y


def expected_target() -> str:
    backend = make_backend("mujoco", camera_size=(64, 48), depth=False)
    backend.reset(3, TaskKind("pickup"))
    target = backend.status().task.target_id
    backend.close()
    return target


def test_discrete_bridge_latches_the_target_and_executes_decided_actions_whole(ros_domain):
    with running_node(MODULE, ros_domain, params=PARAMS), ros_client(ros_domain) as client:
        odoms: list[Odometry] = []
        costs: list[DiagnosticStatus] = []
        statuses: list[String] = []
        results: list[String] = []
        client.node.create_subscription(Odometry, "odom", odoms.append, qos_profile_sensor_data)
        client.node.create_subscription(DiagnosticStatus, "safevla/step_cost", costs.append, RELIABLE)
        client.node.create_subscription(String, "safevla/episode_status", statuses.append, RELIABLE)
        client.node.create_subscription(String, "safevla/action_result", results.append, RELIABLE)
        status_pub = client.node.create_publisher(String, "safevla/primitive_status", RELIABLE)
        twist_pub = client.node.create_publisher(Twist, "cmd_vel", RELIABLE)
        client.spin_until(lambda: bool(odoms) and status_pub.get_subscription_count() > 0, 60,
                          "the bridge's odometry and its primitive_status subscription")
        targets: list[String] = []  # subscribed late: only the latched message can arrive
        client.node.create_subscription(String, "safevla/task_target", targets.append, LATCHED)
        client.spin_until(lambda: bool(targets), 10, "the latched task target")
        assert targets[-1].data == expected_target() != ""
        client.spin_until(lambda: bool(statuses), 10, "an episode status")
        assert json.loads(statuses[-1].data)["monitor_acknowledged"] is False
        acknowledgement = PrimitiveStatus(PrimitivePhase.IDLE, 40, reason="episode reset")
        status_pub.publish(conv.primitive_status_to_msg(acknowledgement))
        client.spin_until(lambda: json.loads(statuses[-1].data)["monitor_acknowledged"], 10,
                          "the monitor's acknowledgement of the reset in the episode status")

        start = position(odoms[-1])
        forward = Twist()
        forward.linear.x = 0.3
        for _ in range(5):
            twist_pub.publish(forward)
            client.spin_for(0.1)
        assert position(odoms[-1]) == start  # commands move nothing
        assert not costs

        decided = PrimitiveStatus(PrimitivePhase.RUNNING, 41, 0, 0, "", "allow")  # move ahead
        status_pub.publish(conv.primitive_status_to_msg(decided))
        client.spin_until(lambda: len(costs) == 1, 10, "the cost step of the executed action")
        client.spin_until(lambda: json.loads(statuses[-1].data)["steps"] == 1, 10, "one step in the status")
        client.spin_for(0.3)
        assert math.dist(position(odoms[-1]), start) == pytest.approx(0.2, abs=0.03)
        (report,) = (conv.primitive_status_from_msg(m) for m in results)
        assert (report.phase, report.proposal_id, report.executed) == (PrimitivePhase.DONE, 41, 0)
        stamps = [(conv.time_to_seconds(o.header.stamp), math.dist(position(o), start) > 0.1) for o in odoms]
        before = max(t for t, moved in stamps if not moved)
        after = min(t for t, moved in stamps if moved)
        assert before < report.stamp <= after  # the time the world jumped (best effort may lose that odometry)
        status_pub.publish(conv.primitive_status_to_msg(PrimitiveStatus(PrimitivePhase.DONE, 41, 0, 0)))
        status_pub.publish(conv.primitive_status_to_msg(PrimitiveStatus(PrimitivePhase.ABORTED, 42, 0, 0)))
        client.spin_until(lambda: len(costs) == 2, 10, "the standing-still step of a refusal")
        client.spin_for(0.3)
        assert json.loads(statuses[-1].data)["steps"] == 2  # DONE of an executed action closed nothing
        assert len(results) == 1  # a refusal ran nothing: no report
        # The budget is spent: a proposal the monitor lets through now does not run, and the report says so.
        status_pub.publish(conv.primitive_status_to_msg(PrimitiveStatus(PrimitivePhase.RUNNING, 43, 0, 0, "", "allow")))
        client.spin_until(lambda: len(results) == 2, 10, "the report on a proposal that did not run")
        late = conv.primitive_status_from_msg(results[-1])
        assert (late.phase, late.proposal_id) == (PrimitivePhase.ABORTED, 43) and "not run" in late.reason
        assert len(costs) == 2
