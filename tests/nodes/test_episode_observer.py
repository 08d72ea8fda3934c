"""The episode observer's wait for a connected graph: against a real sim_bridge process over DDS with no safety
monitor to acknowledge the bridge's resets, it resets again until its timeout, then says what is missing; and
what the /diagnostics of a policy node and a monitor (built by the nodes' own conversions) must show before a
policy node's links count as connected. (Every through-ROS evaluation graph passes through the same wait.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context

from safevla_node.errors import SafeVLAError
from safevla_node.nodes import conversions as conv
from safevla_node.nodes.episode_observer import EpisodeObserver
from safevla_node.policy_runner import PolicyNodeConfig, PolicyRunner
from safevla_node.safety.monitor import MonitorConfig, SafetyMonitor
from safevla_node.safety.monitor_types import PrimitiveStatus, TickStats
from safevla_node.safety.primitives import PrimitivePhase
from tests.ros_harness import running_node

pytestmark = pytest.mark.ros

PARAMS = {"task": "objectnav", "seed": 0, "render": False, "action_execution": "discrete", "real_time_factor": 5.0}


@pytest.fixture
def observer_of(ros_domain) -> Iterator[Callable[..., EpisodeObserver]]:
    """Makes EpisodeObservers in the test's domain; all are destroyed at the end."""
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain.domain_id)
    made: list[EpisodeObserver] = []

    def make(**kwargs: object) -> EpisodeObserver:
        made.append(EpisodeObserver(context, **kwargs))
        return made[-1]

    yield make
    for observer in made:
        observer.destroy_node()
    rclpy.shutdown(context=context)


def test_without_a_monitor_the_bridge_is_reset_until_the_timeout_and_the_error_names_the_monitor(
        ros_domain, observer_of):
    with running_node("safevla_node.nodes.sim_bridge", ros_domain, params=PARAMS):
        observer = observer_of()
        observer.spin_until(lambda: observer._reset.service_is_ready(), 60, "the bridge's ~/reset")
        with pytest.raises(SafeVLAError, match="safety monitor did not acknowledge a reset of the bridge"):
            observer.wait_for_monitor(timeout=2.5, retry_s=1.0)
        assert observer.trace.status["monitor_acknowledged"] is False
        assert observer.trace.status["episode"] >= 3  # the start-up episode and at least two resets


def test_a_policy_node_counts_as_connected_once_each_side_has_heard_the_other(observer_of):
    observer = observer_of(policy="policy_node")
    observer.trace.status = {"episode": 2, "monitor_acknowledged": True}
    runner, monitor = PolicyRunner(PolicyNodeConfig(), 0.0), SafetyMonitor(MonitorConfig(), now=0.0)

    def publish(now: float) -> None:
        observer._on_diagnostics(conv.policy_diagnostics_to_msg(runner.report(now), Time(), "policy_node"))
        observer._on_diagnostics(conv.diagnostics_to_msg(monitor.report(now), TickStats(), Time(),
                                                         "safety_monitor"))

    publish(1.0)
    assert len(observer._unconnected(2)) == 2
    runner.on_primitive_status(1.5, PrimitiveStatus(PrimitivePhase.IDLE, reason="episode reset"))
    publish(2.0)
    assert observer._unconnected(2) == ["the safety monitor has received no heartbeat of policy_node"]
    monitor.on_policy_heartbeat(2.5)
    publish(3.0)
    assert observer._unconnected(2) == []
    assert "did not acknowledge" in observer._unconnected(3)[0]  # a later reset needs its own answer
