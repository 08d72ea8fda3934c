"""ROS 2 node of the simulation bridge: a simulator behind the robot's own topic names.

The policy and the safety monitor cannot tell this node from a Stretch: it publishes the same sensor topics
(REFERENCE.md section 3) and takes the same commands. The decisions live in ``sim_bridge.bridge.SimBridge``;
this node converts messages and owns ``/clock``: it runs on the wall clock (never on sim time, which it
produces) and advances the simulation by ``physics_dt_s`` every ``physics_dt_s / real_time_factor`` seconds.

Published (sim-time stamps): ``/clock``; ``camera/color/image_raw`` + ``camera/color/camera_info`` (navigation
camera); ``gripper_camera/color/image_raw`` + ``gripper_camera/color/camera_info`` (manipulation camera);
``camera/aligned_depth_to_color/image_raw`` (32FC1 m) + ``camera/aligned_depth_to_color/camera_info``; ``odom``;
``joint_states``; ``scan``; ``safevla/objects`` (privileged ground truth, MarkerArray encoding of
``conversions``); ``safevla/step_cost`` (diagnostic_msgs/DiagnosticStatus: the Safety-CHORES cost of each
closed step, key per category); ``safevla/episode_status`` (std_msgs/String JSON, on every step and at 1 Hz);
``safevla/instruction`` (std_msgs/String, reliable + transient local) and ``safevla/episode_reset``
(std_msgs/Empty) at every episode start; discrete execution: ``safevla/action_result`` (std_msgs/String,
reliable; the JSON of ``safevla/primitive_status``, stamped after the action) for each action the monitor let
through: DONE when it ran, ABORTED when it could not (the episode was over).
Sensors use SensorDataQoS.

Subscribed: ``cmd_vel`` (Twist), ``arm_controller/joint_trajectory`` (JointTrajectory: its last point is the
joint target; ``gripper_aperture`` grasps or releases), ``safevla/primitive_status`` (closes cost steps).
A NaN twist or an out-of-range joint target is dropped with a log line and never reaches the physics.

Evaluation through ROS: with ``action_execution: discrete`` each action the monitor lets through runs whole
(``sim_bridge.bridge``), and ``proposer.kind`` (expert, noisy_expert, checkpoint) runs an evaluation policy
inside this process, proposing on ``safevla/action_proposal`` in the policy node's format
(``safevla_node.evaluation.proposer``), once the monitor acknowledged the episode's reset (an IDLE
``safevla/primitive_status``; ``monitor_acknowledged`` in ``safevla/episode_status``); the shield
interventions of the proposals executed (whoever proposed them: this proposer or a policy node) appear in
``safevla/episode_status``.
``safevla/task_target`` (std_msgs/String, reliable + transient local) names the task's target object at
every episode start (empty: none), for the monitor's shield.

Test-bench parameters: ``scene_file`` loads one purpose-made scene (``Scene.to_json``) for every episode
instead of generated homes; ``scan_fov_deg`` publishes only the scan sector ahead (blind spots behind).

Services: ``~/reset`` (std_srvs/Trigger: new episode from the current ``seed``/``task``/``infeasible``
parameters; set them first with ``ros2 param set``), ``~/episode_status`` (std_srvs/Trigger: JSON in
``message``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState, LaserScan
from std_msgs.msg import Empty, Float32MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from safevla_node.errors import ConfigError, MessageError, PolicyLoadError, SafeVLAError
from safevla_node.evaluation.proposer import BridgeProposer
from safevla_node.evaluation.runner import home_backend_kwargs
from safevla_node.nodes import conversions as conv
from safevla_node.nodes.node_main import run_node
from safevla_node.nodes.params import declare_config, read_config
from safevla_node.safety.monitor_types import OdometryData, PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import StepCost
from sim_bridge.bridge import BridgeConfig, BridgeStep, SimBridge, scene_source
from sim_bridge.interface import CameraFrame, EpisodeStatus
from sim_bridge.registry import make_backend

__all__ = ["SimBridgeNode", "episode_status_json", "main"]

NODE_NAME = "sim_bridge"
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
_CAMERAS = {  # topic prefix -> attribute of the Observation
    "camera/color": "nav_camera",
    "gripper_camera/color": "manip_camera",
}


def episode_status_json(status: EpisodeStatus, episode: int, interventions: dict[str, int] | None = None,
                        monitor_acknowledged: bool = False) -> str:
    """The episode status as one JSON line (topic, service and the launcher's progress output); with a
    proposer running, its shield interventions too (``limits``, ``replacements``, ``stops``), and whether
    the safety monitor acknowledged the episode's reset (``monitor_acknowledged``: its statuses reach the
    bridge).

    ``path_length`` is exact here (evaluation compares it with in-process runs); round it for display."""
    cost = status.cumulative_cost
    return json.dumps({
        "episode": episode, "task": status.task.kind.value, "instruction": status.task.instruction,
        "feasible": status.task.feasible, "steps": status.steps, "success": status.success, "done": status.done,
        "cost": cost.total, "cost_by_category": {c.value: v for c, v in cost.by_category().items()},
        "path_length": status.path_length, "expert_path_length": status.expert_path_length,
        **({"interventions": interventions} if interventions is not None else {}),
        "monitor_acknowledged": monitor_acknowledged,
    })


def _step_cost_msg(cost: StepCost) -> DiagnosticStatus:
    level = DiagnosticStatus.WARN if cost.total else DiagnosticStatus.OK
    values = [KeyValue(key=c.value, value=str(v)) for c, v in cost.by_category().items()]
    values += [KeyValue(key=f"detail.{k}", value=v) for k, v in cost.details.items()]
    return DiagnosticStatus(level=level, name="safevla_step_cost", message=f"step cost {cost.total}",
                            values=[KeyValue(key="total", value=str(cost.total)), *values])


class SimBridgeNode(Node):
    """Publishes a backend's observations and applies commands to it (see the module docstring).

    Raises (from the constructor):
        ConfigError: a parameter fails validation.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        if self.get_parameter("use_sim_time").value:
            # This node is the source of /clock: it must never wait for it.
            self.set_parameters([Parameter("use_sim_time", Parameter.Type.BOOL, False)])
        declare_config(self, BridgeConfig)
        self.config = read_config(self, BridgeConfig)
        c = self.config
        backend_kwargs: dict[str, Any] = {}
        if c.backend == "mujoco":
            backend_kwargs = home_backend_kwargs(c.difficulty, c.perturbation, (c.camera_width, c.camera_height),
                                                 depth=c.render_depth)
        source = scene_source(c)
        if source is not None:
            backend_kwargs["scene_source"] = source
        self.bridge = SimBridge(make_backend(c.backend, **backend_kwargs), c)

        self._clock_pub = self.create_publisher(ClockMsg, "/clock", _RELIABLE)
        sensor = qos_profile_sensor_data
        self._image_pubs = {p: self.create_publisher(Image, f"{p}/image_raw", sensor) for p in _CAMERAS}
        self._info_pubs = {p: self.create_publisher(CameraInfo, f"{p}/camera_info", sensor) for p in _CAMERAS}
        self._depth_pub = self.create_publisher(Image, "camera/aligned_depth_to_color/image_raw", sensor)
        self._depth_info_pub = self.create_publisher(CameraInfo, "camera/aligned_depth_to_color/camera_info", sensor)
        self._odom_pub = self.create_publisher(Odometry, "odom", sensor)
        self._joints_pub = self.create_publisher(JointState, "joint_states", sensor)
        self._scan_pub = self.create_publisher(LaserScan, "scan", sensor)
        self._objects_pub = self.create_publisher(MarkerArray, "safevla/objects", sensor)
        self._cost_pub = self.create_publisher(DiagnosticStatus, "safevla/step_cost", _RELIABLE)
        self._status_pub = self.create_publisher(String, "safevla/episode_status", _RELIABLE)
        self._instruction_pub = self.create_publisher(String, "safevla/instruction", _LATCHED)
        self._reset_pub = self.create_publisher(Empty, "safevla/episode_reset", _RELIABLE)
        self._target_pub = self.create_publisher(String, "safevla/task_target", _LATCHED)
        self._proposal_pub = self.create_publisher(Float32MultiArray, "safevla/action_proposal", _RELIABLE)
        self._result_pub = self.create_publisher(String, "safevla/action_result", _RELIABLE)
        self._proposer = BridgeProposer()
        self._decisions: dict[str, int] = {}  # discrete: the shield's verdict on each executed proposal

        self.create_subscription(Twist, "cmd_vel", self._on_twist, _RELIABLE)
        self.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self._on_trajectory, _RELIABLE)
        self.create_subscription(String, "safevla/primitive_status", self._on_primitive_status, _RELIABLE)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/episode_status", self._on_episode_status)

        self._start_episode()
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        period = c.physics_dt_s / c.real_time_factor if c.real_time_factor > 0 else 1e-4
        self.create_timer(period, self._on_tick, clock=wall)
        self.create_timer(1.0, self._publish_status, clock=wall)
        self.get_logger().info(f"{c.backend} simulation running at x{c.real_time_factor:g} real time "
                               f"(physics step {c.physics_dt_s * 1e3:g} ms)")

    # --- episodes ---------------------------------------------------------------------------------------

    def _start_episode(self) -> None:
        """A new episode from the current parameters (``seed``, ``task``, ``infeasible``, ``render`` and
        ``proposer.*`` and ``step_budget`` apply at every reset; the backend's own set-up only at start-up).

        Raises:
            ConfigError: a parameter fails validation.
            PolicyLoadError: the proposer's checkpoint does not load.
        """
        latest = read_config(self, BridgeConfig)
        c = self.config = replace(self.config, seed=latest.seed, task=latest.task, infeasible=latest.infeasible,
                                  render=latest.render, proposer=latest.proposer, step_budget=latest.step_budget)
        self.bridge.config = c
        self.bridge.reset(c.seed, c.task, c.infeasible)
        task = self.bridge.status().task
        self._proposer.reset(c.proposer, self.bridge.backend, task, c.seed, self.bridge.time)
        self._decisions = {}
        self._reset_pub.publish(Empty())
        self._target_pub.publish(String(data=task.target_id or ""))
        self._instruction_pub.publish(String(data=task.instruction))
        self._publish_step(self.bridge.step(), force_all=True)
        self._publish_status()

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self._start_episode()
        except (ValueError, SafeVLAError) as exc:
            response.success, response.message = False, f"reset failed: {exc}"
            return response
        response.success, response.message = True, self.bridge.status().task.instruction
        return response

    def _on_episode_status(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, self._status_json()
        return response

    def _publish_status(self) -> None:
        self._status_pub.publish(String(data=self._status_json()))

    def _status_json(self) -> str:
        counts = self._proposer.intervention_counts() if self._proposer.active else None
        if counts is None and self.config.discrete:  # an outside proposer (the policy node): as it counts
            d = self._decisions
            counts = {"limits": d.get("limit", 0), "replacements": d.get("replace", 0), "stops": d.get("stop", 0)}
        return episode_status_json(self.bridge.status(), self.bridge.episode, counts, self._proposer.acknowledged)

    # --- commands ---------------------------------------------------------------------------------------

    def _on_twist(self, msg: Twist) -> None:
        try:
            self.bridge.on_twist(msg.linear.x, msg.angular.z)
        except ValueError as exc:
            self.get_logger().error(f"rejected cmd_vel, not applied: {exc}", throttle_duration_sec=1.0)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            self.bridge.on_joint_targets(conv.trajectory_from_msg(msg).final_targets())
        except (ValueError, MessageError) as exc:
            self.get_logger().error(f"rejected joint trajectory, not applied: {exc}", throttle_duration_sec=1.0)

    def _on_primitive_status(self, msg: String) -> None:
        try:
            status = conv.primitive_status_from_msg(msg)
        except MessageError as exc:
            self.get_logger().error(f"ignored primitive status: {exc}", throttle_duration_sec=1.0)
            return
        self._proposer.on_status(status)  # the policy hears what ran before it runs, as in-process
        if status.phase is PrimitivePhase.IDLE:  # the monitor acknowledged the reset: say so at once
            self._publish_status()
            return
        cost = self.bridge.on_primitive_status(status)
        if cost is not None:
            if self.config.discrete and status.verdict:  # a deciding status this episode stepped on
                self._decisions[status.verdict] = self._decisions.get(status.verdict, 0) + 1
            self._cost_pub.publish(_step_cost_msg(cost))
            if self.config.discrete:  # the world jumped: publish it now, the next proposal is judged in it
                self._publish_step(BridgeStep(replace(self.bridge.observation, time=self.bridge.time), True,
                                              True, True, True), force_all=True)
            self._publish_status()
        if self.config.discrete and status.phase is PrimitivePhase.RUNNING:
            self._report_action(status, ran=cost is not None)

    def _report_action(self, status: PrimitiveStatus, ran: bool) -> None:
        """Discrete execution: tell the monitor that the proposal it let through ran whole (DONE) or not at all
        (ABORTED: the episode is over or its budget spent), stamped with the time after it as the sensor
        headers carry it, so the monitor's step ends there and not on odometry from before the jump."""
        stamp = conv.time_to_seconds(conv.seconds_to_time(self.bridge.time))
        phase, reason = ((PrimitivePhase.DONE, "executed whole") if ran else
                         (PrimitivePhase.ABORTED, "not run: the episode is over or its step budget is spent"))
        self._result_pub.publish(conv.primitive_status_to_msg(
            replace(status, phase=phase, reason=reason, verdict="", stamp=stamp)))

    # --- simulation -------------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        step = self.bridge.step()
        if step.closed_cost is not None:
            self._cost_pub.publish(_step_cost_msg(step.closed_cost))
        self._publish_step(step)
        if self._proposer.active:
            command = self._proposer.poll(self.bridge.time, self.bridge.observation, self.bridge.status())
            if command is not None:
                self._proposal_pub.publish(conv.encode_action_proposal(command))

    def _publish_step(self, step: BridgeStep, force_all: bool = False) -> None:
        obs, c = step.observation, self.config
        stamp = conv.seconds_to_time(obs.time)
        self._clock_pub.publish(ClockMsg(clock=stamp))
        # The pose before the sensors projected from it: a monitor places each scan at the latest odometry
        # it has (discrete execution relies on it after the world jumped).
        if step.state or force_all:
            snap = obs.snapshot.robot
            odom = OdometryData(snap.x, snap.y, snap.yaw, *obs.base_velocity)
            self._odom_pub.publish(conv.odom_to_msg(odom, stamp, c.frames.odom, c.frames.base))
            self._joints_pub.publish(conv.joint_state_to_msg(obs.joints, stamp))
        if step.scan or force_all:
            self._scan_pub.publish(conv.scan_to_msg(obs.scan, stamp, c.frames.scan))
        if step.objects or force_all:
            self._objects_pub.publish(conv.objects_to_msg(tuple(obs.snapshot.objects.values()), stamp, c.frames.odom))
        frames = {"camera/color": (obs.nav_camera, c.frames.depth),
                  "gripper_camera/color": (obs.manip_camera, c.gripper_camera_frame)}
        for prefix, (frame, frame_id) in frames.items():
            if frame is not None:
                self._publish_camera(prefix, frame, frame_id, stamp)
        if obs.nav_camera is not None and obs.nav_camera.depth is not None:
            self._depth_pub.publish(conv.depth_to_msg(obs.nav_camera.depth, stamp, c.frames.depth))
            self._depth_info_pub.publish(self._camera_info(obs.nav_camera, c.frames.depth, stamp))

    def _publish_camera(self, prefix: str, frame: CameraFrame, frame_id: str, stamp: Any) -> None:
        self._image_pubs[prefix].publish(conv.rgb_to_msg(frame.rgb, stamp, frame_id))
        self._info_pubs[prefix].publish(self._camera_info(frame, frame_id, stamp))

    @staticmethod
    def _camera_info(frame: CameraFrame, frame_id: str, stamp: Any) -> CameraInfo:
        h, w = frame.rgb.shape[:2]
        return conv.camera_info_to_msg(w, h, frame.fx, frame.fy, frame.cx, frame.cy, stamp, frame_id)

    def close(self) -> None:
        """Free the backend (its renderer and simulator); the simulation ends with the process."""
        self.bridge.backend.close()


def main(args: list[str] | None = None) -> int:
    """Run the bridge until Ctrl-C or SIGTERM; exit status 1 on an invalid parameter or missing backend."""
    return run_node(SimBridgeNode, NODE_NAME, args,
                    fatal={ConfigError: "invalid parameter", PolicyLoadError: "cannot load the proposer's policy",
                           KeyError: "cannot start the simulation",
                           ImportError: "cannot start the simulation"},
                    on_exit=SimBridgeNode.close)


if __name__ == "__main__":
    sys.exit(main())
