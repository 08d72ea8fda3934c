"""ROS 2 node that runs the SafeVLA policy and proposes one discrete action per step to the safety monitor.

The decisions (when to act, the watchdog, faults, episodes) live in
``safevla_node.policy_runner.PolicyRunner``; this node loads the model, declares the parameters, converts
messages (``conversions``) and runs inference on one worker thread (``InferenceWorker``) fed with the
latest frames only. A 50 Hz steady-clock timer collects finished inferences, publishes their proposals and
starts the next one when the runner allows.
Publishing nothing is the fail-safe answer to every fault: the monitor's deadman then stops the robot.

Topics (defaults, all remappable with ``-r old:=new``; see also ``config/policy_node.yaml``):

Subscribed
    ``camera/color/image_raw`` and ``gripper_camera/color/image_raw`` (sensor_msgs/Image, rgb8/bgr8/rgba8/
    bgra8), or with ``compressed_images`` their ``/compressed`` (sensor_msgs/CompressedImage, JPEG/PNG):
    navigation and manipulation cameras, SensorDataQoS.
    ``joint_states`` (sensor_msgs/JointState, SensorDataQoS): the object-in-hand flag is true while
    ``object_in_hand_joint`` (default ``gripper_aperture``) lies within ``object_in_hand_range``: a gripper
    closed on an object stops between fully closed and fully open; ``joint_lift`` and ``wrist_extension``
    are part of the pose the refusal memory keys on.
    ``odom`` (nav_msgs/Odometry, SensorDataQoS): the base pose of the refusal memory (an action the shield
    refused is not proposed again while the robot stays where it was; see ``policy_runner``).
    ``safevla/instruction`` (std_msgs/String, reliable + transient local): the goal; a different text
    starts a new episode, an empty one withdraws it.
    ``safevla/episode_reset`` (std_msgs/Empty, reliable): end the episode; wait for the next instruction.
    ``safevla/primitive_status`` (std_msgs/String JSON, reliable): the monitor's DONE/ABORTED that ends a
    step, and its deciding status (the shield's ``verdict``) that tells a refusal.

Header stamps matter: an inference waits for both frames, the odometry and the joint states stamped after
the end of the previous step (a zero stamp counts as the arrival time), so it never acts on a frame taken
mid-motion.

Published
    ``safevla/action_proposal`` (std_msgs/Float32MultiArray ``safevla_action_v1``, reliable): action and
    distribution.
    ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): state, inference latency p50/max, achieved rate,
    input ages, proposal and drop counters, at ``diagnostics_rate_hz``.
    ``safevla/policy_heartbeat`` (std_msgs/Header stamped with the node clock, reliable): at
    ``heartbeat_rate_hz`` from a steady-clock timer on the executor, independent of the inference thread, so
    the monitor can stop a primitive within its heartbeat timeout when this process dies (DDS notices a
    killed participant only after its lease, ~20 s by default). Steady, not sim time: this process's sim
    clock lags whenever its executor is behind on /clock, which must not look like a dead policy.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Empty, Float32MultiArray, Header, String

import policies
from policies.runtime import PolicyObservation, SafeVLAPolicy, select_device
from safevla_node.errors import ConfigError, MessageError, PolicyLoadError
from safevla_node.nodes import conversions as conv
from safevla_node.nodes.node_main import run_node
from safevla_node.nodes.params import declare_config, read_config, watch_config
from safevla_node.policy_runner import (
    Camera,
    InferenceWorker,
    PolicyNodeConfig,
    PolicyRunner,
    StepExecutor,
)

__all__ = ["PolicyNode", "load_policy", "main", "shipped_checkpoint"]

NODE_NAME = "policy_node"
#: Parameters read once at start-up (the model, the subscriptions and the timers are created once).
READ_ONLY_PARAMETERS = ("checkpoint", "dinov2_path", "tokenizer_path", "device", "precision",
                        "compressed_images", "seed", "diagnostics_rate_hz", "heartbeat_rate_hz")
CAMERA_TOPICS = {Camera.NAV: "camera/color/image_raw", Camera.MANIP: "gripper_camera/color/image_raw"}
_POLL_PERIOD_S = 0.02
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)

M = TypeVar("M")
V = TypeVar("V")


def _stamp(stamp: Time) -> float | None:
    """A header stamp in seconds; None for a zero (unset) stamp, which the runner takes as the arrival."""
    seconds = conv.time_to_seconds(stamp)
    return seconds if seconds > 0.0 else None


def shipped_checkpoint() -> Path:
    """Where the shipped policy lives: ``policies/checkpoints/bc_tiny/`` beside the ``policies`` package."""
    return Path(policies.__file__).resolve().parent / "checkpoints" / "bc_tiny"


def load_policy(config: PolicyNodeConfig) -> SafeVLAPolicy:
    """The policy named by ``checkpoint`` (or the shipped one), ready to run on camera frames and text.

    Raises:
        PolicyLoadError: the checkpoint is missing or does not load, CUDA is asked for but absent, or the
            policy lacks an image encoder or a tokenizer and no ``dinov2_path`` / ``tokenizer_path``
            gives one.
    """
    if config.checkpoint:
        path = Path(config.checkpoint).expanduser()
        if not path.exists():
            raise PolicyLoadError(
                f"checkpoint {str(path)!r} does not exist: set the `checkpoint` parameter to a directory "
                "written by SafeVLAPolicy.save_pretrained, an allenact .pt or a Lightning .ckpt (convert "
                "those with `python -m policies.convert SRC DST`)")
    else:
        path = shipped_checkpoint()
        if not path.exists():
            raise PolicyLoadError(
                f"the shipped policy {path} does not exist yet: train the tiny behaviour-cloning policy "
                "into it (SafeVLAPolicy(...).save_pretrained('policies/checkpoints/bc_tiny')), or set the "
                "`checkpoint` parameter to a saved policy directory, an allenact .pt or a Lightning .ckpt")
    if config.device == "cuda" and select_device("auto").type != "cuda":
        raise PolicyLoadError("device 'cuda' requested but torch sees no CUDA device: set `device` to auto "
                              "or cpu")
    policy = SafeVLAPolicy.from_pretrained(path, device=config.device, precision=config.precision,
                                           dinov2_path=config.dinov2_path or None,
                                           tokenizer_path=config.tokenizer_path or None)
    if policy.image_encoder is None:
        raise PolicyLoadError(f"{path} has no image encoder: set `dinov2_path` to the DINOv2 ViT-S/14 "
                              "weights")
    if policy.tokenizer is None:
        raise PolicyLoadError(f"{path} has no tokenizer: set `tokenizer_path` to a tokenizer.json or a local "
                              "t5-small tokenizer directory")
    return policy


class PolicyNode(Node):
    """Wires cameras, joint states, instruction, episode reset and the monitor's status to a ``PolicyRunner``.

    Raises (from the constructor):
        ConfigError: a parameter fails validation (the message names it).
        PolicyLoadError: the checkpoint cannot be loaded (the message names the path and the fix).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_config(self, PolicyNodeConfig, read_only=READ_ONLY_PARAMETERS)
        config = read_config(self, PolicyNodeConfig)
        policy = load_policy(config)
        self._runner = PolicyRunner(config, self._now())
        self._worker = InferenceWorker(StepExecutor(policy, PolicyObservation, config.seed))
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._reported_fault = ""

        self._proposal_pub = self.create_publisher(Float32MultiArray, "safevla/action_proposal", _RELIABLE)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", _RELIABLE)
        self._heartbeat_pub = self.create_publisher(Header, "safevla/policy_heartbeat", _RELIABLE)
        for camera, topic in CAMERA_TOPICS.items():
            self._subscribe_camera(camera, topic, config.compressed_images)
        self._subscribe(JointState, "joint_states",
                        lambda m: (conv.joint_state_from_msg(m), _stamp(m.header.stamp)),
                        lambda now, v: self._runner.on_joint_states(now, *v), qos_profile_sensor_data)
        # The pose in the odometry's own frames, whatever they are called: the memory compares poses only.
        self._subscribe(Odometry, "odom", lambda m: (conv.odom_from_msg(m), _stamp(m.header.stamp)),
                        lambda now, v: self._runner.on_odometry(now, *v), qos_profile_sensor_data)
        self._subscribe(String, "safevla/instruction", conv.instruction_from_msg, self._runner.on_instruction,
                        _LATCHED)
        self._subscribe(String, "safevla/primitive_status", conv.primitive_status_from_msg,
                        self._runner.on_primitive_status, _RELIABLE)
        self.create_subscription(Empty, "safevla/episode_reset",
                                 lambda _msg: self._runner.on_episode_reset(self._now()), _RELIABLE)
        watch_config(self, PolicyNodeConfig, self._reconfigure)
        self.create_timer(_POLL_PERIOD_S, self._on_poll, clock=self._steady)
        self.create_timer(1.0 / config.diagnostics_rate_hz, self._on_diagnostics)
        self.create_timer(1.0 / config.heartbeat_rate_hz, self._on_heartbeat, clock=self._steady)
        self.get_logger().info(f"policy {policy.config.name!r} on {policy.device}, at most "
                               f"{config.max_rate_hz:g} Hz, images older than {config.max_image_age_s:g} s "
                               "are not acted on")

    def _reconfigure(self, config: PolicyNodeConfig) -> None:
        """Apply new parameters; a set ``instruction`` starts an episode with it (or withdraws the goal)."""
        goal_set = config.instruction != self._runner.config.instruction
        self._runner.reconfigure(config)
        if goal_set:
            self._runner.set_goal(self._now(), config.instruction)

    def _now(self) -> float:
        """Node-clock time in seconds (sim time under use_sim_time)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _subscribe_camera(self, camera: Camera, topic: str, compressed: bool) -> None:
        """Keep each frame undecoded: only the one an inference uses is ever decoded (on the worker)."""
        msg_type, decode = (CompressedImage, conv.compressed_rgb_from_msg) if compressed else \
            (Image, conv.rgb_from_msg)

        def callback(msg: Any) -> None:
            self._runner.on_frame(camera, self._now(), lambda: decode(msg), _stamp(msg.header.stamp))

        # as image_transport does: the transport's subtopic hangs off the base topic AFTER remapping, so a
        # robot profile that remaps the raw topic also moves its /compressed
        name = f"{self.resolve_topic_name(topic)}/compressed" if compressed else topic
        self.create_subscription(msg_type, name, callback, qos_profile_sensor_data)

    def _subscribe(self, msg_type: type[M], topic: str, convert: Callable[[M], V],
                   accept: Callable[[float, V], object], qos: QoSProfile) -> None:
        """Subscribe so that a message failing ``convert`` is counted and logged, never acted upon."""

        def callback(msg: M) -> None:
            try:
                value = convert(msg)
            except MessageError as exc:
                self._runner.on_malformed(topic, str(exc))
                self.get_logger().warning(f"dropped {topic}: {exc}", throttle_duration_sec=1.0)
                return
            accept(self._now(), value)

        self.create_subscription(msg_type, topic, callback, qos)

    def _on_poll(self) -> None:
        """Publish finished inferences, then start the next one if the runner allows."""
        for request, outcome in self._worker.take():
            command = self._runner.on_result(self._now(), time.monotonic(), request, outcome)
            if command is not None:
                self._proposal_pub.publish(conv.encode_action_proposal(command))
        request = self._runner.poll(self._now(), time.monotonic())
        if request is not None:
            self._worker.submit(request)
        self._log_fault()

    def _log_fault(self) -> None:
        """Log each new fault once with the ROS logger (the runner reports it in /diagnostics)."""
        fault = self._runner.fault() or ""
        if fault and fault != self._reported_fault:
            self.get_logger().error(f"no action: {fault}")
        self._reported_fault = fault

    def _on_heartbeat(self) -> None:
        self._heartbeat_pub.publish(Header(stamp=self.get_clock().now().to_msg(), frame_id=self.get_name()))

    def _on_diagnostics(self) -> None:
        report = self._runner.report(self._now())
        self._diag_pub.publish(conv.policy_diagnostics_to_msg(report, self.get_clock().now().to_msg(),
                                                              self.get_name()))

    def close(self) -> None:
        """Stop the inference worker (a hung one is left to die with the process: it is a daemon)."""
        if not self._worker.close(timeout=1.0):
            self.get_logger().warning("inference worker still running at shutdown")


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or SIGTERM; exit status 1 on an invalid parameter or checkpoint."""
    return run_node(PolicyNode, NODE_NAME, args,
                    fatal={ConfigError: "invalid parameter", PolicyLoadError: "cannot load the policy"},
                    on_exit=PolicyNode.close)


if __name__ == "__main__":
    sys.exit(main())
