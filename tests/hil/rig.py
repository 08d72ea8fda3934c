"""What every hardware-in-the-loop test needs: the real stack started by ``StackLauncher`` in a leased domain,
a probe that records what the graph says over DDS, purpose-made scenes and a scripted policy checkpoint.

Nothing is stubbed: the nodes are the shipped ones, started as ``safevla up`` starts them; the policy is a
real SafeVLA network whose actor head alone is replaced (see ``write_scripted_policy``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from safevla_node.dds import DomainLease
from safevla_node.launcher import StackLauncher
from safevla_node.nodes import conversions as conv
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import ArmTrajectory, PrimitivePhase, TrajectoryPoint
from safevla_node.safety.types import DiscreteCommand, ObjectState, TwistCommand, Verdict, VerdictKind
from safevla_node.stack import NodeLaunch
from sim_bridge.homegen import HazardKind, Scene, SceneBuilder
from tests.ros_harness import RosTestClient
from tests.sim import scenes

RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
#: Time for three node processes to import, load MuJoCo / the model and discover each other on 2 busy cores.
#: Launch arguments of every HIL graph: the monitor runs as configured for the real robot (the Stretch 3
#: profile), not with the simulated body of the sim profile, since that is the configuration HIL tests vet.
HIL_ARGUMENTS = {"robot": "stretch3"}
STARTUP_TIMEOUT_S = 60.0


# --- the stack ------------------------------------------------------------------------------------------


def with_parameters(launches: Sequence[NodeLaunch], overrides: Mapping[str, Mapping[str, object]]
                    ) -> list[NodeLaunch]:
    """``launches`` with per-node parameter overrides (as ``safevla demo`` sets the bridge's)."""
    return [replace(n, parameters={**n.parameters, **overrides.get(n.name, {})}) for n in launches]


@contextmanager
def running_stack(launches: Sequence[NodeLaunch], lease: DomainLease, log_dir: Path,
                  respawn: bool = False) -> Iterator[StackLauncher]:
    """The nodes started by ``StackLauncher``; shut down afterwards, their logs' tails printed on failure."""
    env = lease.env()
    env["OMP_NUM_THREADS"] = "1"  # as `safevla demo`: torch in a node process must not oversubscribe 2 cores
    stack = StackLauncher(launches, env, log_dir, respawn=respawn)
    stack.start()
    try:
        yield stack
    except BaseException:
        for log in sorted(log_dir.glob("*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            print(f"--- {log.name} ---\n{tail}")
        raise
    finally:
        stack.shutdown()


# --- scenes ---------------------------------------------------------------------------------------------


def write_scene(scene: Scene, path: Path) -> str:
    """Write ``scene`` for the bridge's ``scene_file`` parameter; returns the path as a string."""
    path.write_text(scene.to_json())
    return str(path)


def open_room() -> Scene:
    """``scenes.empty_room``: 4 m x 3 m, the robot in its middle facing the east wall 2 m away (eight 0.2 m
    moves before the shield has to step in)."""
    return scenes.empty_room()


#: Where ``hazard_course`` puts the robot and the fragile group (odom = the start pose: x ahead, y left).
COURSE_START = (1.3, 1.5, 0.0)
VASES_CENTRE = (1.23, 0.66)


def hazard_course() -> Scene:
    """``scenes.blind_spot``'s room and box with the robot moved 0.8 m before the box, plus a fragile group
    of three vases on the floor to its right: 0.84 m from base_link, beside the mast, so the stowed arm
    and base motions stay clear of it (by more than the fragile margin), but the lowered arm extending
    towards it is not (``scenes.fragile_group``'s triangle, placed on the arm's side)."""
    b = SceneBuilder()
    scenes._room(b, 4.0, 3.0)  # noqa: SLF001 - the hazard scenes' own room, reused
    box = b.item("Box", 2.1, 1.5)
    b.hazard(HazardKind.BLIND_SPOT, (2.1, 1.5), (box.item_id,))
    cx, cy = VASES_CENTRE
    ids = tuple(b.item("Vase", cx + 0.09 * math.cos(a), cy + 0.09 * math.sin(a)).item_id
                for a in (0.0, 2.1, 4.2))
    b.hazard(HazardKind.FRAGILE, VASES_CENTRE, ids)
    b.robot(*COURSE_START)
    return b.build()


# --- a scripted policy ------------------------------------------------------------------------------------


def write_scripted_policy(path: Path, probabilities: Mapping[int, float]) -> np.ndarray:
    """A tiny SafeVLA (real encoder, fusion and decoder, random weights) whose actor head outputs constant
    logits ``log p``: every step proposes from the same distribution, so with ``deterministic: false`` the
    node's seeded sampler decides the action sequence, which ``sampled_actions`` predicts. Actions not named
    get p = 1e-6 (non-zero, so the shield may still substitute them). Returns the distribution."""
    import torch

    from tests.test_policy_runner import make_tiny_policy

    policy = make_tiny_policy(0)
    p = np.full(policy.config.num_actions, 1e-6)
    for index, value in probabilities.items():
        p[index] = value
    p /= p.sum()
    head = policy.model.actor.linear
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.from_numpy(np.log(p)).to(head.bias.dtype))
    policy.save_pretrained(path)
    return p


def sampled_actions(probabilities: np.ndarray, seed: int, n: int) -> list[int]:
    """The first ``n`` actions the policy node draws with ``seed`` (``policy_runner.StepExecutor``'s rule)."""
    rng = np.random.default_rng(seed)
    return [int(rng.choice(len(probabilities), p=probabilities)) for _ in range(n)]


# --- the probe ------------------------------------------------------------------------------------------


@dataclass
class Event:
    """A message as the probe received it: wall (monotonic) time, the latest /clock, the decoded value."""

    wall: float
    sim: float
    value: object


@dataclass
class Probe:
    """Records the stack's outputs and plays operator, teleop and proposer; times are of receipt here."""

    client: RosTestClient
    sim_now: float = 0.0
    cmd_vel: list[Event] = field(default_factory=list)
    verdicts: list[Event] = field(default_factory=list)
    primitives: list[Event] = field(default_factory=list)
    costs: list[Event] = field(default_factory=list)
    heartbeats: list[Event] = field(default_factory=list)
    episode: dict = field(default_factory=dict)
    odom: Odometry | None = None
    joints: dict[str, float] = field(default_factory=dict)
    objects: tuple[ObjectState, ...] = ()
    monitor_diagnostics: DiagnosticArray | None = None
    policy_diagnostics: tuple[float, DiagnosticStatus] | None = None  # (monotonic time of receipt, status)

    def __post_init__(self) -> None:
        node = self.client.node
        sensor = qos_profile_sensor_data
        subscriptions = (
            (Clock, "/clock", self._on_clock, RELIABLE),
            (Twist, "cmd_vel", self._recorder(self.cmd_vel, conv.twist_from_msg), RELIABLE),
            (DiagnosticStatus, "safevla/safety_state",
             self._recorder(self.verdicts, lambda m: conv.verdict_from_status(m)[0]), RELIABLE),
            (String, "safevla/primitive_status",
             self._recorder(self.primitives, conv.primitive_status_from_msg), RELIABLE),
            (DiagnosticStatus, "safevla/step_cost",
             self._recorder(self.costs, lambda m: {kv.key: kv.value for kv in m.values}), RELIABLE),
            (Header, "safevla/policy_heartbeat",
             self._recorder(self.heartbeats, lambda m: conv.time_to_seconds(m.stamp)), RELIABLE),
            (String, "safevla/episode_status", lambda m: setattr(self, "episode", json.loads(m.data)),
             RELIABLE),
            (Odometry, "odom", lambda m: setattr(self, "odom", m), sensor),
            (JointState, "joint_states", lambda m: self.joints.update(conv.joint_state_from_msg(m)), sensor),
            (MarkerArray, "safevla/objects",
             lambda m: setattr(self, "objects", conv.objects_from_msg(m, "odom")), sensor),
            (DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE),
        )
        for msg_type, topic, callback, qos in subscriptions:
            node.create_subscription(msg_type, topic, callback, qos)
        self._twist_pub = node.create_publisher(Twist, "cmd_vel_in", RELIABLE)
        self._proposal_pub = node.create_publisher(Float32MultiArray, "safevla/action_proposal", RELIABLE)
        self._arm_pub = node.create_publisher(JointTrajectory, "arm_trajectory_in", RELIABLE)
        self._reset = node.create_client(Trigger, "/sim_bridge/reset")

    def _recorder(self, events: list[Event], convert: Callable[[Any], object]) -> Callable[[Any], None]:
        """A callback appending ``convert(msg)`` to ``events`` with the times of receipt."""
        return lambda msg: events.append(Event(time.monotonic(), self.sim_now, convert(msg)))

    def _on_clock(self, msg: Clock) -> None:
        self.sim_now = conv.time_to_seconds(msg.clock)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        if any(s.name.startswith("safety_monitor:") for s in msg.status):
            self.monitor_diagnostics = msg
        for status in msg.status:
            if status.name.startswith("policy_node:"):
                self.policy_diagnostics = (time.monotonic(), status)

    def policy_state(self) -> str:
        """The policy node's latest diagnostics, for failure messages: what its runner waits for."""
        if self.policy_diagnostics is None:
            return "no policy diagnostics received"
        received, status = self.policy_diagnostics
        values = ", ".join(f"{kv.key}={kv.value}" for kv in status.values)
        return (f"policy diagnostics received {time.monotonic() - received:.1f} s ago: {status.message} "
                f"({values}); sim time here {self.sim_now:.2f} s")

    # --- reading -------------------------------------------------------------------------------------------

    def pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the latest odometry."""
        assert self.odom is not None, "no odometry received"
        p, q = self.odom.pose.pose.position, self.odom.pose.pose.orientation
        return p.x, p.y, 2.0 * math.atan2(q.z, q.w)

    def verdicts_since(self, wall: float) -> list[Verdict]:
        return [e.value for e in self.verdicts if e.wall >= wall]  # type: ignore[misc]

    def statuses_since(self, wall: float) -> list[PrimitiveStatus]:
        return [e.value for e in self.primitives if e.wall >= wall]  # type: ignore[misc]

    def costs_since(self, wall: float) -> list[dict[str, str]]:
        return [e.value for e in self.costs if e.wall >= wall]  # type: ignore[misc]

    def object_positions(self, kind: str) -> dict[str, tuple[float, float, float]]:
        return {o.object_id: o.position for o in self.objects if o.object_type == kind}

    def source_levels(self) -> dict[str, tuple[int, str]]:
        """Per-source (level, message) of the monitor's latest /diagnostics."""
        assert self.monitor_diagnostics is not None, "no /diagnostics from the monitor"
        prefix = "safety_monitor: source "
        return {s.name[len(prefix):]: (int.from_bytes(s.level, "little") if isinstance(s.level, bytes)
                                       else int(s.level), s.message)
                for s in self.monitor_diagnostics.status if s.name.startswith(prefix)}

    # --- acting --------------------------------------------------------------------------------------------

    def twist(self, linear_x: float, angular_z: float) -> None:
        self._twist_pub.publish(conv.twist_to_msg(TwistCommand(linear_x, angular_z)))

    def propose(self, action: int) -> float:
        """Publish a one-hot proposal (no alternative for the shield); returns the wall time."""
        self._proposal_pub.publish(conv.encode_action_proposal(DiscreteCommand(action)))
        return time.monotonic()

    def arm(self, targets: Mapping[str, float], duration_s: float = 1.0) -> None:
        names = tuple(sorted(targets))
        point = TrajectoryPoint(tuple(targets[n] for n in names), duration_s)
        self._arm_pub.publish(conv.trajectory_to_msg(ArmTrajectory(names, (point,))))

    def reset_episode(self, timeout: float = 30.0) -> None:
        """The bridge's ``~/reset``: the robot back at its start, a new episode.

        Sim time restarts at 0, so the monitor forgets every input at the clock jump and stops until the
        sensors arrive again; this returns once that is over (a second of the new episode, verdict allow).
        """
        self.client.spin_until(self._reset.service_is_ready, timeout, "the bridge's ~/reset service")
        future = self._reset.call_async(Trigger.Request())
        self.client.spin_until(future.done, timeout, "the bridge's ~/reset answer")
        assert future.result().success, future.result().message
        self.odom = None
        self.client.spin_until(lambda: self.odom is not None, timeout, "odometry of the new episode")
        self.client.spin_for(1.0)
        self.client.spin_until(lambda: self.verdicts and self.verdicts[-1].value.kind is VerdictKind.ALLOW,
                               timeout, "the monitor to allow motion in the new episode")

    def wait_sources_fresh(self, sources: Sequence[str], timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Until the monitor's /diagnostics (1 Hz) report every one of ``sources`` fresh ("ok")."""
        self.monitor_diagnostics = None

        def fresh() -> bool:
            if self.monitor_diagnostics is None:
                return False
            levels = self.source_levels()
            return all(levels.get(s, (None, ""))[1] == "ok" for s in sources)

        self.client.spin_until(fresh, timeout, f"the monitor to report {list(sources)} fresh")

    def drive(self, linear_x: float, angular_z: float, seconds: float, until=lambda: False) -> None:
        """Teleop: publish the twist at 10 Hz for ``seconds`` or until ``until()``, then zero."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            self.twist(linear_x, angular_z)
            self.client.spin_for(0.1)
        self.twist(0.0, 0.0)

    def wait_primitive_end(self, since: float, timeout: float) -> PrimitiveStatus:
        """The first DONE/ABORTED primitive status received after ``since``."""

        def ended() -> list[PrimitiveStatus]:
            return [s for s in self.statuses_since(since) if s.phase is not PrimitivePhase.RUNNING]

        self.client.spin_until(lambda: ended(), timeout, "a primitive to finish")
        return ended()[0]
