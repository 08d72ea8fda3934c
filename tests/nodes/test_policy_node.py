"""The policy node as its own process with a tiny random-weight SafeVLA, driven over real DDS.

The test process plays the robot (cameras, joint states), the operator (instruction, episode reset) and the
safety monitor (it answers each proposal with RUNNING then DONE, numbering proposals from 1 as the monitor
does). The node runs under ``use_sim_time`` with a /clock published here at real-time rate, so every age,
rate and timeout below counts the node clock, not the wall.

One node serves the module; the tests run in file order (the first one relies on no instruction having
been sent yet).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Empty, Float32MultiArray, String

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.dds import DomainLease
from safevla_node.nodes import conversions as conv
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.stack import load_stack
from tests.ros_harness import NodeProcess, RosTestClient, ros_client, running_node
from tests.test_policy_runner import make_tiny_policy

pytestmark = pytest.mark.ros

MODULE = "safevla_node.nodes.policy_node"
RATE_HZ = 2.0  # below what the tiny model and the answering monitor allow, so the cap shows
IMAGE_AGE_S = 0.5
PRIMITIVE_TIMEOUT_S = 1.0
CAMERA_PERIOD_S = 0.1
SIM_START_S = 1000.0
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
END = ACTION_BY_CODE["end"].index


@dataclass
class Rig:
    """Robot, operator and monitor around the policy node."""

    client: RosTestClient
    publish_images: bool = True
    answer: bool = True
    proposals: list[tuple[float, Float32MultiArray]] = field(default_factory=list)
    diagnostics: DiagnosticArray | None = None
    last_image_sent: float = 0.0
    _monitor_count: int = 0
    _pending: list[tuple[float, PrimitiveStatus]] = field(default_factory=list)

    def __post_init__(self) -> None:
        node = self.client.node
        self.clock_pub = node.create_publisher(Clock, "/clock", 10)
        self.nav_pub = node.create_publisher(Image, "camera/color/image_raw", 10)
        self.manip_pub = node.create_publisher(Image, "gripper_camera/color/image_raw", 10)
        self.joints_pub = node.create_publisher(JointState, "joint_states", 10)
        self.instruction_pub = node.create_publisher(String, "safevla/instruction", LATCHED)
        self.reset_pub = node.create_publisher(Empty, "safevla/episode_reset", 10)
        self.status_pub = node.create_publisher(String, "safevla/primitive_status", 10)
        node.create_subscription(Float32MultiArray, "safevla/action_proposal", self._on_proposal, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: setattr(self, "diagnostics", m), 10)
        rng = np.random.default_rng(0)
        self.nav_rgb = rng.integers(0, 256, (224, 384, 3), dtype=np.uint8)
        self.manip_rgb = rng.integers(0, 256, (224, 384, 3), dtype=np.uint8)
        self._wall0 = time.monotonic()
        node.create_timer(0.005, self._tick_clock)
        node.create_timer(CAMERA_PERIOD_S, self._sensors)
        node.create_timer(0.01, self._monitor)

    def sim_now(self) -> float:
        return SIM_START_S + time.monotonic() - self._wall0

    def _tick_clock(self) -> None:
        self.clock_pub.publish(Clock(clock=conv.seconds_to_time(self.sim_now())))

    def _sensors(self) -> None:
        stamp = conv.seconds_to_time(self.sim_now())
        self.joints_pub.publish(conv.joint_state_to_msg({"gripper_aperture": 0.1, "joint_lift": 0.5}, stamp))
        if self.publish_images:
            self.nav_pub.publish(conv.rgb_to_msg(self.nav_rgb, stamp, "camera_color_optical_frame"))
            self.manip_pub.publish(conv.rgb_to_msg(self.manip_rgb, stamp, "gripper_camera_optical_frame"))
            self.last_image_sent = time.monotonic()

    def _on_proposal(self, msg: Float32MultiArray) -> None:
        now = time.monotonic()
        self.proposals.append((now, msg))
        self._monitor_count += 1  # the monitor numbers every proposal it receives, answered or not
        if self.answer:
            action = conv.decode_action_proposal(msg).action_index
            n = self._monitor_count
            running = PrimitiveStatus(PrimitivePhase.RUNNING, n, action, action)
            done = PrimitiveStatus(PrimitivePhase.DONE, n, action, action, "reached")
            self._pending += [(now, running), (now + 0.05, done)]

    def _monitor(self) -> None:
        now = time.monotonic()
        due = [s for t, s in self._pending if t <= now]
        self._pending = [(t, s) for t, s in self._pending if t > now]
        for status in due:
            self.status_pub.publish(conv.primitive_status_to_msg(status))

    def instruct(self, text: str) -> None:
        self.instruction_pub.publish(String(data=text))

    def status(self) -> dict[str, str]:
        if self.diagnostics is None:
            return {}
        return {kv.key: kv.value for kv in self.diagnostics.status[0].values}

    def level(self) -> bytes | None:
        return None if self.diagnostics is None else self.diagnostics.status[0].level

    def wait_state(self, state: str, timeout: float = 5.0) -> None:
        self.client.spin_until(lambda: self.status().get("state") == state, timeout,
                               f"diagnostics state {state}")

    def proposals_since(self, t: float) -> list[Float32MultiArray]:
        return [msg for when, msg in self.proposals if when >= t]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny SafeVLA with random weights, except that ``end`` is suppressed so no episode ends by chance."""
    import torch

    policy = make_tiny_policy(seed=1)
    with torch.no_grad():
        policy.model.actor.linear.bias[END] = -30.0
    return policy.save_pretrained(tmp_path_factory.mktemp("policy") / "tiny")


@contextmanager
def policy_node(lease: DomainLease, params: dict, remap: dict[str, str] | None = None) -> Iterator[NodeProcess]:
    """The node with one intra-op torch thread (the tiny model runs many times faster so on a small, shared
    CPU)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        with running_node(MODULE, lease, params=params, remap=remap) as proc:
            yield proc


@pytest.fixture(scope="module")
def node_process(checkpoint) -> Iterator[tuple[DomainLease, NodeProcess]]:
    params = {"checkpoint": str(checkpoint), "device": "cpu", "max_rate_hz": RATE_HZ,
              "max_image_age_s": IMAGE_AGE_S, "primitive_timeout_s": PRIMITIVE_TIMEOUT_S,
              "inference_timeout_s": 10.0, "diagnostics_rate_hz": 10.0, "use_sim_time": True}
    with DomainLease() as lease, policy_node(lease, params) as proc:
        yield lease, proc


@pytest.fixture(scope="module")
def module_rig(node_process) -> Iterator[Rig]:
    lease, proc = node_process
    with ros_client(lease) as client:
        rig = Rig(client)
        client.spin_until(lambda: rig.diagnostics is not None or not proc.alive(), 60.0,
                          "the node's diagnostics")
        assert proc.alive(), proc.output()
        yield rig


@pytest.fixture
def rig(module_rig, node_process) -> Rig:
    _, proc = node_process
    assert proc.alive(), proc.output()
    module_rig.publish_images, module_rig.answer = True, True
    return module_rig


def test_without_an_instruction_nothing_is_proposed(rig):
    rig.client.spin_for(1.0)
    assert rig.status()["state"] == "no_instruction", rig.status()
    assert rig.level() == DiagnosticStatus.WARN
    assert rig.proposals == []
    stamp = conv.time_to_seconds(rig.diagnostics.header.stamp)
    assert stamp == pytest.approx(rig.sim_now(), abs=0.5)  # the node's clock is /clock (use_sim_time)


def test_fresh_images_and_an_instruction_give_valid_proposals_at_up_to_the_rate(rig):
    rig.instruct("find the mug")
    rig.client.spin_until(lambda: len(rig.proposals) >= 1, 10.0, "a first proposal")
    start = time.monotonic()
    rig.client.spin_for(2.5)
    received = rig.proposals_since(start)
    assert len(received) >= 3, f"{len(received)} proposals in 2.5 s; diagnostics {rig.status()}"
    # Counted, not timed one by one: the test process may take two proposals off the wire together.
    assert len(received) <= 2.5 * RATE_HZ + 1, f"{len(received)} proposals in 2.5 s at max_rate_hz {RATE_HZ}"
    for msg in received:
        command = conv.decode_action_proposal(msg)  # raises on a malformed encoding
        assert sum(command.probabilities) == pytest.approx(1.0, abs=1e-3)
        assert command.action_index == int(np.argmax(command.probabilities))  # deterministic by default
    status = rig.status()
    assert int(status["proposals"]) >= len(received) and status["instruction"] == "find the mug"
    assert float(status["inference_latency_max_s"]) > 0.0
    assert float(status["achieved_rate_hz"]) <= RATE_HZ + 0.05


def test_stale_images_give_no_proposals(rig):
    rig.client.spin_until(lambda: len(rig.proposals) >= 1, 10.0, "proposals")
    rig.publish_images = False
    stopped = time.monotonic()
    rig.wait_state("stale_images", timeout=3.0)
    quiet_from = max(time.monotonic(), stopped + IMAGE_AGE_S + 0.2)  # an inference started in time may finish
    rig.client.spin_for(quiet_from - time.monotonic() + 1.2 * IMAGE_AGE_S + 0.3)
    assert rig.proposals_since(quiet_from) == []
    assert rig.level() == DiagnosticStatus.WARN
    assert "stale" in rig.diagnostics.status[0].message
    rig.publish_images = True
    resumed = time.monotonic()
    rig.client.spin_until(lambda: rig.proposals_since(resumed), 5.0, "proposals after the images resume")


def test_an_episode_reset_stops_proposals_until_a_new_instruction(rig):
    rig.client.spin_until(lambda: len(rig.proposals) >= 1, 10.0, "proposals")
    episode = int(rig.status()["episode"])
    rig.reset_pub.publish(Empty())
    rig.wait_state("no_instruction", timeout=3.0)
    quiet_from = time.monotonic() + 0.3  # a proposal already on the wire
    rig.client.spin_for(1.5)
    assert rig.proposals_since(quiet_from) == []
    rig.instruct("pick up the apple")
    resumed = time.monotonic()
    rig.client.spin_until(lambda: len(rig.proposals_since(resumed)) >= 2, 10.0,
                          "proposals in the new episode")
    rig.client.spin_until(lambda: rig.status().get("instruction") == "pick up the apple", 2.0, "diagnostics")
    assert int(rig.status()["episode"]) == episode + 2  # the reset, then the new instruction


def test_without_the_monitor_s_answer_it_proposes_again_after_the_primitive_timeout(rig):
    rig.answer = False
    rig.client.spin_for(0.3)  # let the last answered step finish
    start = time.monotonic()
    rig.client.spin_for(3.0 * PRIMITIVE_TIMEOUT_S + 0.3)
    times = [when for when, _ in rig.proposals if when >= start]
    assert len(times) >= 2, times
    assert np.diff(times) == pytest.approx([PRIMITIVE_TIMEOUT_S] * (len(times) - 1), abs=0.25)
    assert int(rig.status()["primitive_timeouts"]) >= 2


def test_the_cores_log_records_reach_the_nodes_ros_log_at_their_severity(rig, node_process):
    """The runner (a core: ``logging``, no rclpy) logged the episode starts above and the primitive
    timeouts of the previous test; the node's ROS log carries both, named after the core's logger."""
    _, proc = node_process
    rig.client.spin_until(lambda: "no DONE/ABORTED" in proc.output(), 5.0, "the runner's warning in the log")
    lines = proc.output().splitlines()
    episode = [line for line in lines if "safevla_node.policy_runner: episode" in line and "'find the mug'" in line]
    timeout = [line for line in lines if "safevla_node.policy_runner: no DONE/ABORTED" in line]
    assert episode and episode[0].startswith("[INFO]") and "[policy_node]" in episode[0], lines
    assert timeout and timeout[0].startswith("[WARN]"), lines


def test_compressed_cameras_and_the_instruction_parameter_give_proposals(ros_domain, checkpoint):
    """compressed_images: the /compressed topics (PNG here) of the cameras as the robot profile remaps them
    (``/compressed`` follows the remapped raw topic, as with image_transport); the `instruction` parameter
    starts an episode."""
    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    frame = io.BytesIO()
    rgb = np.random.default_rng(1).integers(0, 256, (224, 384, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(frame, "PNG")
    params = {"checkpoint": str(checkpoint), "device": "cpu", "compressed_images": True,
              "instruction": "find the mug", "primitive_timeout_s": 0.5}
    cameras_raw = ("camera/color/image_raw", "gripper_camera/color/image_raw")
    robot = load_stack().profiles["robot"]["remappings"]
    remap = {topic: robot[topic] for topic in cameras_raw}
    assert all(remap[topic] != topic for topic in cameras_raw)  # the robot's own names
    with policy_node(ros_domain, params, remap) as proc, ros_client(ros_domain, "compressed_client") as client:
        proposals: list[Float32MultiArray] = []
        client.node.create_subscription(Float32MultiArray, "safevla/action_proposal", proposals.append, 10)
        publishers = [client.node.create_publisher(CompressedImage, f"{remap[topic]}/compressed", 10)
                      for topic in cameras_raw]
        raw = client.node.create_publisher(Image, remap[cameras_raw[0]], 10)

        def cameras() -> None:
            for pub in publishers:
                pub.publish(CompressedImage(format="png", data=frame.getvalue()))
            raw.publish(Image())  # a raw frame nobody subscribes to in this mode (it would be malformed)

        client.node.create_timer(CAMERA_PERIOD_S, cameras)
        client.spin_until(lambda: len(proposals) >= 2 or not proc.alive(), 60.0,
                          "proposals from compressed frames")
        assert proc.alive(), proc.output()
        assert sum(conv.decode_action_proposal(proposals[-1]).probabilities) == pytest.approx(1.0, abs=1e-3)


def test_a_missing_checkpoint_exits_non_zero_naming_the_path(ros_domain, tmp_path):
    missing = tmp_path / "no_such_policy"
    proc = NodeProcess(MODULE, ros_domain, params={"checkpoint": str(missing)})
    try:
        assert proc.proc.wait(timeout=60) == 1, proc.output()
        assert f"checkpoint '{missing}' does not exist: set the `checkpoint` parameter" in proc.output()
    finally:
        proc.stop()

