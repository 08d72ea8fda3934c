"""ROS 2 node of the fail-safe safety monitor: sits between every command source and the robot.

The decisions live in ``safevla_node.safety.monitor.SafetyMonitor`` (see its docstring for the rules); this
node declares the parameters, converts messages (``conversions``) and publishes what the core decides.
The control timer is the publisher of record: every period it publishes a twist (zeros when stopped, when
the deadman expired or when nothing commands the base), so a fault is answered within one period. For
latency, a twist arriving on ``cmd_vel_in`` is also judged and published at once from its callback, and a
malformed message or an e-stop publishes zeros at once; the timer still enforces every timeout.
Two faults no input rule sees are caught here: an exception in any callback (a defect) publishes zeros and
an arm hold and holds a FAULT, and the node keeps running rather than dying with a trajectory under way;
under ``use_sim_time`` a wall-clock watchdog does the same while ``/clock`` stops advancing (the control
timer runs on ``/clock``, so it would stop too).

Topics (defaults, all remappable with ``-r old:=new``; see also ``config/safety_monitor.yaml``):

Subscribed
    ``cmd_vel_in`` (geometry_msgs/Twist, reliable): base commands from any upstream (teleop, Nav2, a VLA).
    ``safevla/action_proposal`` (std_msgs/Float32MultiArray, reliable): discrete SafeVLA action and its
    distribution, encoding ``safevla_action_v1`` (``conversions``); runs as a closed-loop motion primitive.
    ``safevla/action_result`` (std_msgs/String, reliable; the JSON of ``safevla/primitive_status``): with
    ``action_execution: discrete``, an executor's report that it ran a proposal whole, stamped after it.
    ``arm_trajectory_in`` (trajectory_msgs/JointTrajectory, reliable): arm goals to forward if safe.
    ``scan`` (sensor_msgs/LaserScan), ``camera/aligned_depth_to_color/image_raw`` (sensor_msgs/Image 16UC1 mm
    or 32FC1 m) with ``camera/aligned_depth_to_color/camera_info``, ``odom`` (nav_msgs/Odometry),
    ``joint_states`` (sensor_msgs/JointState), ``safevla/objects`` (visualization_msgs/MarkerArray):
    all with SensorDataQoS (best effort, so they match reliable publishers too).
    ``safevla/policy_heartbeat`` (std_msgs/Header, reliable): the proposer of discrete actions is alive; a
    primitive running while it is older than ``source_timeout_s.policy_heartbeat`` is aborted with STOP,
    within one control period of the timeout (DDS itself notices a killed process only after its lease,
    ~20 s). A primitive is supervised once the heartbeat was fresh at its proposal or arrived during it
    (always, with ``policy_heartbeat`` in ``required_sources``); see ``SafetyMonitor``'s rule 4.
    ``safevla/task_target`` (std_msgs/String, reliable + transient local): the current task's target object
    id (empty: none), which the shield lets the arm reach; it replaces the ``target_object_id`` parameter.
    ``safevla/episode_reset`` (std_msgs/Empty, reliable): a new episode; the obstacle memory, the objects
    and a running primitive are dropped (the e-stop latch is kept).

Published
    ``cmd_vel`` (geometry_msgs/Twist, reliable depth 10): every control period, and at once on a new twist.
    ``arm_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory): forwarded or primitive arm goals,
    and a hold at the current positions when an arm motion is stopped.
    ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): per-source age and drop counts, verdict, e-stop,
    tick timing, at ``diagnostics_rate_hz``.
    ``safevla/safety_state`` (diagnostic_msgs/DiagnosticStatus): verdict, category, reason, per-category
    risk; on change and at ``state_rate_hz``.
    ``safevla/primitive_status`` (std_msgs/String JSON): running / done / aborted of each action proposal.

Services
    ``~/estop`` (std_srvs/Trigger): latch STOP.  ``~/reset_estop`` (std_srvs/Trigger): release it.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState, LaserScan
from std_msgs.msg import Empty, Float32MultiArray, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from safevla_node.errors import MessageError
from safevla_node.nodes import conversions as conv
from safevla_node.nodes.node_main import run_node
from safevla_node.nodes.params import declare_config, read_config, watch_config
from safevla_node.safety.monitor import FrameConfig, MonitorConfig, SafetyMonitor
from safevla_node.safety.monitor_types import DepthFrame, Source, TickStats
from safevla_node.safety.types import TwistCommand

__all__ = ["SafetyMonitorNode", "main"]

NODE_NAME = "safety_monitor"
#: Parameters that only take effect at start-up (the timer is created once).
READ_ONLY_PARAMETERS = ("control_rate_hz", "action_execution")
_COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

M = TypeVar("M")
V = TypeVar("V")


class SafetyMonitorNode(Node):
    """Wires topics, services and the control timer to a ``SafetyMonitor`` core.

    Raises (from the constructor):
        ConfigError: a parameter fails validation (the message names it).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_config(self, MonitorConfig, read_only=READ_ONLY_PARAMETERS)
        config = read_config(self, MonitorConfig)
        self._core = SafetyMonitor(config, self._now())
        self._stats = TickStats()
        self._last_tick_wall: float | None = None
        self._camera_info: CameraInfo | None = None

        self._cmd_pub = self.create_publisher(Twist, "cmd_vel", _COMMAND_QOS)
        self._arm_pub = self.create_publisher(JointTrajectory, "arm_controller/joint_trajectory",
                                              _COMMAND_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", _COMMAND_QOS)
        self._state_pub = self.create_publisher(DiagnosticStatus, "safevla/safety_state", _COMMAND_QOS)
        self._status_pub = self.create_publisher(String, "safevla/primitive_status", _COMMAND_QOS)

        # Subscription order is the order rclpy handles messages that wait together: a new episode first,
        # then the pose, then the sensors projected from it (a scan is placed at the latest odometry), and
        # the commands last, so they are judged in the newest world that has arrived.
        self.create_subscription(Empty, "safevla/episode_reset",
                                 lambda _msg: self._core.on_episode_reset(self._now()), _COMMAND_QOS)
        self.create_subscription(String, "safevla/task_target", lambda msg: self._core.on_task_target(msg.data),
                                 _LATCHED)
        self._subscribe(Odometry, "odom", Source.ODOM,
                        lambda m: (conv.odom_from_msg(m, self._frames().odom, self._frames().base),
                                   conv.time_to_seconds(m.header.stamp)),
                        lambda now, value: self._core.on_odom(now, *value))
        self._subscribe(JointState, "joint_states", Source.JOINT_STATES, conv.joint_state_from_msg,
                        self._core.on_joint_states)
        self._subscribe(LaserScan, "scan", Source.SCAN,
                        lambda m: (conv.scan_from_msg(m, self._frames().scan), conv.time_to_seconds(m.header.stamp)),
                        lambda now, value: self._core.on_scan(now, *value))
        self._subscribe(MarkerArray, "safevla/objects", Source.OBJECTS,
                        lambda m: conv.objects_from_msg(m, self._frames().odom), self._core.on_objects)
        self._subscribe(CameraInfo, "camera/aligned_depth_to_color/camera_info", Source.CAMERA_INFO,
                        self._keep_camera_info, lambda now, _: self._core.on_camera_info(now))
        self._subscribe(Image, "camera/aligned_depth_to_color/image_raw", Source.DEPTH, self._depth_from_msg,
                        self._core.on_depth)
        self._subscribe(Twist, "cmd_vel_in", Source.CMD_VEL, conv.twist_from_msg,
                        lambda now, twist: self._publish_twist(self._core.on_twist(now, twist)), _COMMAND_QOS)
        self._subscribe(Float32MultiArray, "safevla/action_proposal", Source.ACTION_PROPOSAL,
                        conv.decode_action_proposal, self._core.on_action_proposal, _COMMAND_QOS)
        self._subscribe(String, "safevla/action_result", Source.ACTION_RESULT, conv.primitive_status_from_msg,
                        self._core.on_action_result, _COMMAND_QOS)
        self._subscribe(Header, "safevla/policy_heartbeat", Source.POLICY_HEARTBEAT, lambda m: m,
                        lambda now, _: self._core.on_policy_heartbeat(now), _COMMAND_QOS)
        self._subscribe(JointTrajectory, "arm_trajectory_in", Source.ARM_TRAJECTORY, conv.trajectory_from_msg,
                        self._core.on_arm_trajectory, _COMMAND_QOS)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset_estop", self._on_reset_estop)
        watch_config(self, MonitorConfig, self._core.reconfigure)
        self.create_timer(config.period, self._on_tick)
        self._clock_reading, self._clock_advanced, self._clock_stalled = self._now(), time.monotonic(), False
        if self.get_parameter("use_sim_time").value:
            self.create_timer(config.period, self._watch_sim_clock, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"safety monitor running at {config.control_rate_hz:g} Hz, required sources "
                               f"{list(config.required_sources)}")

    def _frames(self) -> FrameConfig:
        """Expected frame ids, read per message because they may be changed at runtime."""
        return self._core.config.frames

    def _now(self) -> float:
        """Node-clock time in seconds (sim time under use_sim_time)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _subscribe(self, msg_type: type[M], topic: str, source: Source, convert: Callable[[M], V],
                   accept: Callable[[float, V], object], qos: QoSProfile = qos_profile_sensor_data) -> None:
        """Subscribe so that a message failing ``convert`` (or ``accept``) is counted, logged and answered
        with zeros; ``convert`` may return None for a message to ignore without fault."""

        def callback(msg: M) -> None:
            now = self._now()
            try:
                value = convert(msg)
                if value is not None:
                    accept(now, value)
            except MessageError as exc:  # from the conversion, or the core's own checks (obstacle memory)
                self._publish_twist(self._core.on_malformed(now, source, str(exc)))
                self.get_logger().warning(f"dropped {topic}: {exc}", throttle_duration_sec=1.0)
            except Exception as exc:  # noqa: BLE001 (a defect must stop the robot, not the monitor)
                self._fail_safe(f"handling {topic}", exc)

        self.create_subscription(msg_type, topic, callback, qos)

    def _keep_camera_info(self, msg: CameraInfo) -> CameraInfo:
        self._camera_info = msg
        return msg

    def _depth_from_msg(self, msg: Image) -> DepthFrame | None:
        """Depth with the latest camera_info; None (ignored, not a fault) until camera_info has arrived."""
        if self._camera_info is None:
            self.get_logger().info("depth image ignored until camera_info arrives", throttle_duration_sec=5.0)
            return None
        return conv.depth_from_msg(msg, self._camera_info, self._frames().depth)

    def _publish_twist(self, twist: TwistCommand) -> None:
        self._cmd_pub.publish(conv.twist_to_msg(twist))

    def _fail_safe(self, where: str, exc: Exception) -> None:
        """Something raised in a callback: zeros first, then the core's fault hold and arm hold. The node
        keeps running, so the robot stays stopped and supervised (a dead monitor would leave an arm
        trajectory under way and /diagnostics silent)."""
        self._publish_twist(TwistCommand(0.0, 0.0))
        reason = f"internal error: {where} raised {type(exc).__name__}: {exc}"
        self.get_logger().error(f"{reason}; robot stopped\n{traceback.format_exc()}", throttle_duration_sec=1.0)
        self._stop_for(reason)

    def _stop_for(self, reason: str) -> None:
        """The core's fault hold, with the arm hold and the safety state it leads to."""
        hold = self._core.fail_safe(self._now(), reason)
        if hold is not None:
            self._arm_pub.publish(conv.trajectory_to_msg(hold))
        self._state_pub.publish(conv.verdict_to_status(self._core.verdict, self._core.estopped))

    def _watch_sim_clock(self) -> None:
        """On the wall clock, under use_sim_time: zeros and a fault while /clock does not advance (see
        ``clock_timeout_s``); the first tick on a running clock takes over again after the fault hold. It
        samples the clock once a period, so the stop comes at most two periods after the timeout."""
        reading, wall = self._now(), time.monotonic()
        if reading != self._clock_reading:
            self._clock_reading, self._clock_advanced, self._clock_stalled = reading, wall, False
            return
        timeout = self._core.config.clock_timeout_s
        if wall - self._clock_advanced <= timeout:
            return
        self._publish_twist(TwistCommand(0.0, 0.0))
        if not self._clock_stalled:
            self._clock_stalled = True
            reason = (f"/clock stopped at {reading:.3f} s" if reading else "no /clock received") + (
                f" for more than {timeout:g} s of wall time (use_sim_time)")
            self.get_logger().error(f"{reason}; robot stopped until it runs again")
            self._stop_for(reason)

    def _on_tick(self) -> None:
        try:
            self._tick()
        except Exception as exc:  # noqa: BLE001 (see _fail_safe)
            self._fail_safe("the control tick", exc)

    def _tick(self) -> None:
        started = time.perf_counter()
        now = self._now()
        out = self._core.tick(now)
        self._publish_twist(out.twist)
        stamp = self.get_clock().now().to_msg()
        if out.arm is not None:
            self._arm_pub.publish(conv.trajectory_to_msg(out.arm))
        for status in out.statuses:
            self._status_pub.publish(conv.primitive_status_to_msg(status))
        if out.publish_state:
            self._state_pub.publish(conv.verdict_to_status(out.verdict, self._core.estopped))
        if out.publish_diagnostics:
            report = self._core.report(now)
            self._diag_pub.publish(conv.diagnostics_to_msg(report, self._stats, stamp, self.get_name()))
        period = None if self._last_tick_wall is None else started - self._last_tick_wall
        self._last_tick_wall = started
        self._stats.record(period, time.perf_counter() - started, self._core.config.period)

    def _on_estop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._publish_twist(self._core.estop(self._now(), "~/estop service"))
        self.get_logger().warning("e-stop latched; call ~/reset_estop to release")
        response.success, response.message = True, "e-stop latched"
        return response

    def _on_reset_estop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        released = self._core.reset_estop()
        response.success = True
        response.message = "e-stop released" if released else "e-stop was not latched"
        self.get_logger().info(response.message)
        return response

    def publish_final_stop(self) -> None:
        """One last zero twist on shutdown, waited for so it leaves the process."""
        self._publish_twist(TwistCommand(0.0, 0.0))
        self._cmd_pub.wait_for_all_acked(Duration(seconds=0.5))


def _final_stop(node: SafetyMonitorNode) -> None:
    if rclpy.ok():
        node.publish_final_stop()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or SIGTERM; exit status 1 on an invalid parameter."""
    return run_node(SafetyMonitorNode, NODE_NAME, args, on_exit=_final_stop)


if __name__ == "__main__":
    sys.exit(main())
