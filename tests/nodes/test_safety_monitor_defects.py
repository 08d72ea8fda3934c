"""A defect inside the safety monitor (an exception no input check anticipated) stops the robot and leaves the
monitor running: the real node in this process, over DDS with a test client, with the fault injected into its
core, since no known input raises any more."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safevla_node.nodes.safety_monitor import SafetyMonitorNode
from safevla_node.safety.types import VerdictKind
from tests.nodes.test_safety_monitor_node import Rig
from tests.ros_harness import ros_client

pytestmark = pytest.mark.ros


@pytest.fixture
def rig_and_monitor(ros_domain) -> Iterator[tuple[Rig, SafetyMonitorNode]]:
    with ros_client(ros_domain) as client:
        monitor = SafetyMonitorNode(context=client.context)
        client.executor.add_node(monitor)
        try:
            rig = Rig(client)
            rig.passes(0.1, timeout=20.0)
            yield rig, monitor
        finally:
            client.executor.remove_node(monitor)
            monitor.destroy_node()


def _defect(*_args: object) -> None:
    raise ZeroDivisionError("injected defect")


@pytest.mark.parametrize("where", ["on_scan", "tick"])
def test_a_defect_stops_the_robot_names_itself_and_the_monitor_recovers_when_it_is_gone(rig_and_monitor, where):
    rig, monitor = rig_and_monitor
    healthy = getattr(monitor._core, where)
    setattr(monitor._core, where, _defect)
    start = len(rig.received)
    rig.client.spin_until(lambda: rig.last() == (0.0, 0.0), 1.0, "a zero twist after the defect")
    rig.client.spin_until(lambda: "ZeroDivisionError: injected defect" in rig.verdict().reason, 2.0,
                          "the safety state naming the defect")
    assert rig.verdict().kind is VerdictKind.STOP
    rig.client.spin_for(0.5)
    assert all(v == 0.0 for _, v, _ in rig.received[start + 2:])  # never a command while it lasts
    assert len(rig.received) - start >= 5  # the node keeps publishing: it did not die
    setattr(monitor._core, where, healthy)
    rig.passes(0.1, timeout=5.0)  # fixed: the fault hold ends and a fresh twist passes again
