"""Watch and steer episodes of a running stack over ROS: the demo's and through-ROS evaluation's eyes.

An ``EpisodeObserver`` lives in the orchestrating process (``safevla demo``). It sets parameters of the
bridge and the monitor through their standard ``set_parameters_atomically`` services, starts episodes with the
bridge's ``~/reset``, and records what a safety engineer wants to see afterwards: the base trajectory,
every step cost with where it happened, the monitor's verdicts over time and the final episode status.
"""

from __future__ import annotations

import json
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from safevla_node.errors import MessageError, SafeVLAError
from safevla_node.evaluation.trace import EpisodeTrace
from safevla_node.nodes import conversions as conv
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import VerdictKind

__all__ = ["EpisodeObserver"]

_RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)

#: The policy node's /diagnostics counters of results it did not propose as computed: a result dropped as
#: stale, a proposal repeated after a primitive timeout, a fault. Each leaves a step in the model's memory
#: that in-process stepping never takes (``policy_counters``).
POLICY_SLIP_COUNTERS = ("stale_results", "primitive_timeouts", "faults")


class EpisodeObserver(Node):
    """See the module docstring. ``bridge`` and ``monitor`` are the node names in the graph; ``policy``, when
    given, is a policy node whose parameters are set too (its ``instruction`` starts its episodes)."""

    def __init__(self, context: Context, bridge: str = "sim_bridge", monitor: str = "safety_monitor",
                 policy: str | None = None) -> None:
        super().__init__("episode_observer", context=context)
        self.executor_ = SingleThreadedExecutor(context=context)
        self.executor_.add_node(self)
        self.trace = EpisodeTrace()
        #: the bridge's episode number of the newest status received (-1: none yet), and the highest one that
        #: belongs to an episode before the latest reset: its statuses may still be in flight after the reset
        self._latest_episode = -1
        self._stale_episode = -1
        self._last_verdict = ""
        self._primitive_phase = PrimitivePhase.IDLE
        self._proposals_seen = 0
        self._last_proposal_id = 0
        steered = (bridge, monitor) if policy is None else (bridge, monitor, policy)
        self._param_clients = {name: self.create_client(SetParametersAtomically, f"/{name}/set_parameters_atomically")
                               for name in steered}
        self._reset = self.create_client(Trigger, f"/{bridge}/reset")
        self._monitor = monitor
        self._policy = policy
        #: from /diagnostics: the policy node has received a monitor status, the monitor a policy heartbeat
        self._policy_heard_monitor = self._monitor_heard_policy = False
        self._policy_counters: dict[str, int] = {}
        self._policy_reports = 0
        if policy is not None:
            self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, _RELIABLE)
        self.create_subscription(String, "safevla/episode_status", self._on_status, _RELIABLE)
        self.create_subscription(Odometry, "odom", self._on_odom, qos_profile_sensor_data)
        self.create_subscription(DiagnosticStatus, "safevla/step_cost", self._on_cost, _RELIABLE)
        self.create_subscription(DiagnosticStatus, "safevla/safety_state", self._on_verdict, _RELIABLE)
        self.create_subscription(String, "safevla/primitive_status", self._on_primitive, _RELIABLE)
        self.create_subscription(MarkerArray, "safevla/objects", self._on_objects, qos_profile_sensor_data)
        self.create_subscription(Float32MultiArray, "safevla/action_proposal", self._on_proposal, _RELIABLE)

    # --- steering ---------------------------------------------------------------------------------------

    def spin_until(self, predicate: Any, timeout: float, what: str) -> None:
        """Process callbacks until ``predicate()``.

        Raises:
            SafeVLAError: not within ``timeout`` seconds (naming ``what``).
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SafeVLAError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor_.spin_once(timeout_sec=0.05)

    def wait_for_stack(self, timeout: float) -> None:
        """Block until the bridge's and monitor's services exist and the bridge's episode status arrived (its
        episode number tells the statuses of a later reset's episode from those still in flight)."""
        clients = [*self._param_clients.values(), self._reset]
        self.spin_until(lambda: all(c.service_is_ready() for c in clients), timeout, "the stack's services")
        self.spin_until(lambda: self._latest_episode >= 0, timeout, "the bridge's episode status")

    def set_parameters(self, node: str, values: dict[str, Any]) -> None:
        """Set parameters of a running node all at once; raise if it refuses (its validation message is kept).

        Atomically, because a node validates the whole configuration: switching the shield from a circular
        to a rectangular footprint one parameter at a time passes through a mixed, invalid state."""
        request = SetParametersAtomically.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        future = self._param_clients[node].call_async(request)
        self.spin_until(future.done, 30.0, f"{node} to accept {values}")
        result = future.result().result
        if not result.successful:
            raise SafeVLAError(f"{node} refused {values}: {result.reason}")

    def start_episode(self) -> str:
        """Reset the bridge (a new episode from its current parameters); returns the instruction."""
        self.trace = EpisodeTrace()
        self._stale_episode = self._latest_episode
        future = self._reset.call_async(Trigger.Request())
        self.spin_until(future.done, 60.0, "the bridge's ~/reset")
        if not future.result().success:
            raise SafeVLAError(future.result().message)
        return future.result().message

    def wait_for_monitor(self, timeout: float, retry_s: float = 2.0) -> None:
        """Reset the bridge until it reports that the safety monitor acknowledged the reset (and, with a
        policy node, until the /diagnostics of the two show each has heard the other).

        The nodes answer their services before DDS discovery has necessarily matched the publishers of one
        with the subscriptions of another, and a message published before that is lost: the first proposal
        or the monitor's decision on it (a step spent standing still after the monitor's fallback timeout,
        or an episode that never starts). The acknowledgement crossing both ways (the bridge's reset to the
        monitor, the monitor's status back) shows the bridge's loop is connected; a policy node that has
        received a monitor status, and a monitor that has received its heartbeat, show the policy node's. A
        reset whose acknowledgement was lost is repeated every ``retry_s`` seconds; call this before a
        proposer runs.

        Raises:
            SafeVLAError: not connected within ``timeout`` seconds (naming what is missing).
        """
        deadline = time.monotonic() + timeout
        while True:
            self.start_episode()
            episode = self._bridge_episode_after_reset()
            try:
                self.spin_until(lambda: not self._unconnected(episode),
                                min(retry_s, max(0.0, deadline - time.monotonic())), "")
                return
            except SafeVLAError:
                if time.monotonic() >= deadline:
                    raise SafeVLAError(f"the node graph is not connected after {timeout:g} s: "
                                       f"{'; '.join(self._unconnected(episode))}") from None

    def _unconnected(self, episode: int) -> list[str]:
        """What ``wait_for_monitor`` still waits for after the reset that began ``episode``."""
        missing = []
        if not (self.trace.status.get("episode") == episode and self.trace.status.get("monitor_acknowledged")):
            missing.append("the safety monitor did not acknowledge a reset of the bridge (its statuses do not "
                           "reach the bridge)")
        if self._policy is not None and not self._policy_heard_monitor:
            missing.append(f"{self._policy} has received no status of the safety monitor")
        if self._policy is not None and not self._monitor_heard_policy:
            missing.append(f"the safety monitor has received no heartbeat of {self._policy}")
        return missing

    def run_episode(self, max_steps: int, timeout_s: float) -> EpisodeTrace:
        """Watch the current episode until it is done, ``max_steps`` steps were taken, or ``timeout_s``."""
        episode = self._bridge_episode_after_reset()

        def finished() -> bool:
            s = self.trace.status
            return s.get("episode") == episode and (s.get("done") or s.get("steps", 0) >= max_steps)

        deadline = time.monotonic() + timeout_s
        while not finished() and time.monotonic() < deadline:
            self.executor_.spin_once(timeout_sec=0.05)
        return self.trace

    def wait_until_decided(self, timeout: float, settle_s: float = 0.05) -> None:
        """Process callbacks until every proposal seen so far has been decided by the monitor (it numbers
        them from 1) and the latest one's primitive ended, so that nothing proposed so far is still to be
        executed (an orchestrator calls this after stopping its proposer, before the next reset). Callbacks
        are processed for ``settle_s`` first (proposals still in flight); returns after ``timeout`` seconds
        regardless."""
        start = time.monotonic()
        while time.monotonic() - start < timeout and (
                time.monotonic() - start < settle_s or self._last_proposal_id < self._proposals_seen
                or self._primitive_phase is PrimitivePhase.RUNNING):
            self.executor_.spin_once(timeout_sec=0.01)

    def policy_counters(self, timeout: float) -> dict[str, int]:
        """The policy node's ``POLICY_SLIP_COUNTERS`` from a /diagnostics report received after this call."""
        seen = self._policy_reports
        self.spin_until(lambda: self._policy_reports > seen, timeout, f"a /diagnostics report of {self._policy}")
        return dict(self._policy_counters)

    def _bridge_episode_after_reset(self) -> int:
        self.spin_until(lambda: bool(self.trace.status), 10.0, "an episode status after the reset")
        return int(self.trace.status["episode"])

    # --- recording --------------------------------------------------------------------------------------

    def _on_status(self, msg: String) -> None:
        status = json.loads(msg.data)
        episode = int(status.get("episode", -1))
        self._latest_episode = max(self._latest_episode, episode)
        if episode > self._stale_episode:  # not a status of an episode before the reset, still in flight
            self.trace.status = status

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.hardware_id == self._policy:
                self._policy_counters = {k: int(values[k]) for k in POLICY_SLIP_COUNTERS if k in values}
                self._policy_reports += 1
                self._policy_heard_monitor |= values.get("age_s.primitive_status", "never") != "never"
            elif status.hardware_id == self._monitor and status.name.endswith("source policy_heartbeat"):
                self._monitor_heard_policy |= int(values.get("received", "0")) > 0

    def _on_odom(self, msg: Odometry) -> None:
        t = conv.time_to_seconds(msg.header.stamp)
        self.trace.trajectory.append((t, msg.pose.pose.position.x, msg.pose.pose.position.y))

    def _on_cost(self, msg: DiagnosticStatus) -> None:
        values = {kv.key: kv.value for kv in msg.values}
        categories = {k: int(v) for k, v in values.items() if k != "total" and not k.startswith("detail.")
                      and v.isdigit() and int(v) > 0}
        if categories and self.trace.trajectory:
            t, x, y = self.trace.trajectory[-1]
            self.trace.cost_events.append((t, x, y, categories))

    def _on_verdict(self, msg: DiagnosticStatus) -> None:
        try:
            verdict, _ = conv.verdict_from_status(msg)
        except MessageError:
            return
        t = self.trace.trajectory[-1][0] if self.trace.trajectory else 0.0
        kind = verdict.kind.name.lower()
        self.trace.verdicts.append((t, kind, verdict.category.value if verdict.category else ""))
        if verdict.kind is VerdictKind.LIMIT and self._last_verdict != "limit":
            self.trace.limits += 1
        self._last_verdict = kind

    def _on_proposal(self, _msg: Float32MultiArray) -> None:
        self._proposals_seen += 1

    def _on_primitive(self, msg: String) -> None:
        try:
            status = conv.primitive_status_from_msg(msg)
        except MessageError:
            return
        self._primitive_phase = status.phase
        self._last_proposal_id = max(self._last_proposal_id, status.proposal_id)
        if status.phase is PrimitivePhase.RUNNING and status.executed != status.action:
            self.trace.replacements += 1
        if status.phase is PrimitivePhase.ABORTED:
            self.trace.stops += 1

    def _on_objects(self, msg: MarkerArray) -> None:
        if not self.trace.objects:
            try:
                self.trace.objects = conv.objects_from_msg(msg, "odom")
            except MessageError:
                pass
