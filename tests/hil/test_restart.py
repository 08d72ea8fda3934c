"""Killing the simulation bridge, the robot's stand-in, is seen by the monitor as stale sensors; restarting
it resumes. Bridge and monitor run as separate processes over DDS, started by ``StackLauncher`` (``respawn``)
from the ``sim`` profile without the policy (this process is the teleop and the proposer).

Every node runs on the wall clock here (``use_sim_time`` false), as on the robot. Under ``use_sim_time`` the
bridge is also the clock: once it is dead, time stops for every node, no age can grow and nothing moves in
the simulation, so there is nothing to detect; when it restarts, sim time starts again at 0 and the
monitor's clock-jump rule forgets every input (``test_hazards`` goes through that at each ``~/reset``).
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from diagnostic_msgs.msg import DiagnosticArray

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.dds import DomainLease
from safevla_node.launcher import StackLauncher
from safevla_node.nodes.conversions import time_to_seconds
from safevla_node.safety.monitor import MonitorConfig
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import Category, VerdictKind
from safevla_node.stack import load_stack
from tests.hil.rig import (
    HIL_ARGUMENTS,
    STARTUP_TIMEOUT_S,
    Probe,
    open_room,
    running_stack,
    with_parameters,
    write_scene,
)
from tests.ros_harness import ros_client

pytestmark = pytest.mark.ros

MONITOR = MonitorConfig()  # the shipped defaults, as in config/safety_monitor.yaml
REQUIRED_SOURCES = MONITOR.required_sources
TRANSPORT_S = 0.04  # DDS delivery and scheduling allowance on this loaded 2-core box
TELEOP = (0.05, 0.0)  # slow: 2 m of room ahead


@dataclass
class Rig:
    probe: Probe
    stack: StackLauncher


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("restart")
    launches = [n for n in load_stack().resolve("sim", HIL_ARGUMENTS) if n.name != "policy_node"]
    overrides = {
        "sim_bridge": {"scene_file": write_scene(open_room(), tmp / "room.json"), "infeasible": True,
                       "render": False},
        "safety_monitor": {"use_sim_time": False},
    }
    with DomainLease() as lease, running_stack(with_parameters(launches, overrides), lease, tmp / "logs",
                                               respawn=True) as stack, ros_client(lease) as client:
        probe = Probe(client)
        client.spin_until(lambda: probe.odom is not None, STARTUP_TIMEOUT_S, "the bridge's odometry")
        probe.wait_sources_fresh(REQUIRED_SOURCES)
        yield Rig(probe, stack)


def test_a_killed_bridge_is_reported_as_stale_required_sources_and_stops_the_teleop(rig):
    probe = rig.probe
    killed = killed_system = math.inf
    publish_s = []  # how long each teleop publish took: a publish blocked on a dead peer delays the probe
    late_ticks_before = int(monitor_values(probe.monitor_diagnostics)["late_ticks"])
    for tick in range(25):  # teleop at 10 Hz; the bridge dies after 1 s, the operator keeps commanding
        if tick == 10:
            os.kill(rig.stack.pid("sim_bridge"), signal.SIGKILL)
            killed, killed_system = time.monotonic(), time.time()
        start = time.monotonic()
        probe.twist(*TELEOP)
        publish_s.append(time.monotonic() - start)
        probe.client.spin_for(0.1)
    probe.twist(0.0, 0.0)
    before = [e.value.linear_x for e in probe.cmd_vel if e.wall <= killed]
    assert before[-1] == pytest.approx(TELEOP[0]), "the teleop was not forwarded"
    stale = [e for e in probe.verdicts if e.wall > killed and e.value.kind is VerdictKind.STOP]
    assert stale and stale[0].value.category is Category.FAULT, stale
    assert " stale (> " in stale[0].value.reason
    zero = next(e for e in probe.cmd_vel if e.wall > killed and e.value.linear_x == 0.0)
    probe.monitor_diagnostics = None  # the next one, at the monitor's 1 Hz, is well after every timeout
    probe.client.spin_until(lambda: probe.monitor_diagnostics is not None, 3.0, "/diagnostics")
    levels = probe.source_levels()
    assert all(levels[s][0] == 2 and levels[s][1].startswith("stale") for s in REQUIRED_SOURCES), levels
    timeout = max(getattr(MONITOR.source_timeout_s, s) for s in REQUIRED_SOURCES)
    values = monitor_values(probe.monitor_diagnostics)
    why = (f"monitor stopped {(zero.wall - killed) * 1e3:.0f} ms after the bridge was killed "
           f"(bound {(timeout + MONITOR.period + TRANSPORT_S) * 1e3:.0f} ms): {stale[0].value.reason}; "
           f"the monitor last received {last_receipts_after(probe.monitor_diagnostics, killed_system)} "
           f"(ms after the kill), ticked late {int(values['late_ticks']) - late_ticks_before} time(s) during the test "
           f"(longest period since start {values['tick_period_max_s']} s); longest teleop publish "
           f"{max(publish_s) * 1e3:.0f} ms")
    print(why)
    assert zero.wall - killed <= timeout + MONITOR.period + TRANSPORT_S, why
    assert all(e.value.linear_x == 0.0 for e in probe.cmd_vel if e.wall >= zero.wall)


def monitor_values(diagnostics: DiagnosticArray) -> dict[str, str]:
    """The key-values of the monitor's own status in a /diagnostics array."""
    status = next(s for s in diagnostics.status if s.name.endswith(": monitor"))
    return {kv.key: kv.value for kv in status.values}


def last_receipts_after(diagnostics: DiagnosticArray, instant: float) -> dict[str, int]:
    """Per required source, when the monitor last accepted it, in ms after ``instant`` (system time): the
    array's stamp less the source's age, both on the monitor's wall clock (``use_sim_time`` false here)."""
    stamp = time_to_seconds(diagnostics.header.stamp)
    ages = {status.name.rpartition(": source ")[2]: {kv.key: kv.value for kv in status.values}.get("age_s")
            for status in diagnostics.status}
    return {source: round((stamp - float(ages[source]) - instant) * 1e3)
            for source in REQUIRED_SOURCES if ages.get(source) not in (None, "never")}


def test_the_restarted_bridge_resumes_fresh_sensors_and_a_new_proposal_moves_the_robot(rig):
    probe = rig.probe
    died = rig.stack.poll()  # stops the robot (about a second), then restarts the bridge (respawn)
    assert [d.name for d in died] == ["sim_bridge"] and "killed by signal 9" in died[0].describe()
    probe.odom = None
    probe.client.spin_until(lambda: probe.odom is not None, STARTUP_TIMEOUT_S, "the restarted bridge")
    probe.wait_sources_fresh(REQUIRED_SOURCES)
    probe.client.spin_until(lambda: probe.verdicts[-1].value.kind is VerdictKind.ALLOW, 5.0, "verdict allow")
    x_before = probe.pose()[0]
    start = probe.propose(ACTION_BY_CODE["m"].index)
    status = probe.wait_primitive_end(start, 10.0)
    probe.client.spin_for(0.3)
    assert status.phase is PrimitivePhase.DONE, status
    assert probe.pose()[0] - x_before == pytest.approx(0.2, abs=0.03)
