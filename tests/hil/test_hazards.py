"""Scripted hazards on the whole graph (bridge and monitor as separate processes over DDS, started by
``StackLauncher`` from the ``sim`` profile of ``config/stack.yaml``, without the policy: this process is the
teleop and the proposer). Each hazard is stopped by the monitor before contact, and the simulator's own
Safety-CHORES step costs, judged on ground truth, confirm that nothing was hit or disturbed.

The scene is ``rig.hazard_course``: a box 0.8 m ahead of the robot and a fragile group of vases on its arm
side. The bridge publishes a 180-degree scan (``scan_fov_deg``): like a lidar whose rear is hidden by the
mast, it leaves a real blind spot behind the robot, which is what the blind-spot rule is about (with a
360-degree scan nothing near the base is ever unobserved). No cameras are rendered: the monitor's required
sources are the scan, odometry and joint states. Each test starts a new episode with the bridge's ``~/reset``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.dds import DomainLease
from safevla_node.safety.primitives import PrimitivePhase, wrap_angle
from safevla_node.safety.types import Category, VerdictKind
from safevla_node.stack import load_stack
from tests.hil.rig import (
    COURSE_START,
    HIL_ARGUMENTS,
    STARTUP_TIMEOUT_S,
    Probe,
    hazard_course,
    running_stack,
    with_parameters,
    write_scene,
)
from tests.ros_harness import ros_client

pytestmark = pytest.mark.ros

FOOTPRINT_RADIUS_M = 0.22  # the monitor's shield.footprint_radius_m
BOX_NEAR_FACE_X = 2.1 - 0.35 / 2  # the course's box: centre x 2.1, 0.35 m wide
MOVED_M = 0.01  # an object displaced by more than this was touched
HOLD_S = 0.5  # the hazard's twist is kept up this long after the stop
REQUIRED_SOURCES = ("scan", "odom", "joint_states")  # config/safety_monitor.yaml


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Iterator[Probe]:
    tmp = tmp_path_factory.mktemp("hazards")
    bridge = {"scene_file": write_scene(hazard_course(), tmp / "course.json"), "infeasible": True,
              "render": False, "scan_fov_deg": 180.0}
    launches = [n for n in load_stack().resolve("sim", HIL_ARGUMENTS) if n.name != "policy_node"]
    with DomainLease() as lease, running_stack(with_parameters(launches, {"sim_bridge": bridge}), lease,
                                               tmp / "logs"), ros_client(lease) as client:
        probe = Probe(client)
        client.spin_until(lambda: probe.objects and probe.joints, STARTUP_TIMEOUT_S, "the bridge's sensors")
        probe.wait_sources_fresh(REQUIRED_SOURCES)
        yield probe


def _stopped_by(probe: Probe, category: Category, since: float):
    """True once the monitor has published a STOP of ``category`` after ``since``."""
    return lambda: any(v.kind is VerdictKind.STOP and v.category is category
                       for v in probe.verdicts_since(since))


def _assert_unmoved(before: dict, after: dict) -> None:
    assert before.keys() == after.keys() and before
    for key, position in before.items():
        moved = max(abs(a - b) for a, b in zip(position, after[key], strict=True))
        assert moved < MOVED_M, f"{key} moved {moved:.3f} m"


def _assert_no_cost(probe: Probe, since: float) -> list[dict[str, str]]:
    costs = probe.costs_since(since)
    assert all(c["total"] == "0" for c in costs), costs
    return costs


def test_an_obstacle_in_the_path_of_a_teleop_twist_is_stopped_before_contact(probe):
    probe.reset_episode()
    box = probe.object_positions("Box")
    start = time.monotonic()
    probe.drive(0.2, 0.0, seconds=8.0, until=_stopped_by(probe, Category.COLLISION, start))
    probe.drive(0.2, 0.0, seconds=HOLD_S)  # still commanded: it stays stopped
    probe.client.spin_for(1.5)  # the bridge closes the teleop's cost step after 1 s without a primitive
    x, _, _ = probe.pose()
    print(f"stopped at x {x:.3f} m: {BOX_NEAR_FACE_X - x - FOOTPRINT_RADIUS_M:.3f} m before the box")
    assert x > COURSE_START[0] + 0.1, "the robot never drove"
    assert x + FOOTPRINT_RADIUS_M < BOX_NEAR_FACE_X, "the footprint reached the box"
    verdicts = probe.verdicts_since(start)
    assert any(v.kind is VerdictKind.STOP and v.category is Category.COLLISION for v in verdicts), verdicts
    assert _assert_no_cost(probe, start), "no cost step was closed for the drive"
    _assert_unmoved(box, probe.object_positions("Box"))


def test_an_obstacle_seen_then_left_in_the_blind_spot_stops_a_motion_towards_it(probe):
    probe.reset_episode()
    box = probe.object_positions("Box")
    probe.client.spin_for(0.5)  # the box, 0.8 m ahead, is in the scan
    probe.drive(0.0, 0.6, seconds=12.0, until=lambda: abs(wrap_angle(probe.pose()[2])) > math.pi - 0.1)
    probe.client.spin_for(0.5)
    assert abs(wrap_angle(probe.pose()[2])) > math.pi - 0.15, "the robot did not turn around"
    x_turned = probe.pose()[0]
    start = time.monotonic()
    # Backing up towards the box, now behind the scan's field of view.
    probe.drive(-0.15, 0.0, seconds=10.0, until=_stopped_by(probe, Category.BLIND_SPOT, start))
    probe.drive(-0.15, 0.0, seconds=HOLD_S)
    probe.client.spin_for(1.5)
    x, _, _ = probe.pose()
    print(f"backed up {x - x_turned:.3f} m, stopped {BOX_NEAR_FACE_X - x - FOOTPRINT_RADIUS_M:.3f} m before "
          "the box")
    assert x > x_turned + 0.1, "the robot never backed up"
    assert x + FOOTPRINT_RADIUS_M < BOX_NEAR_FACE_X, "the footprint reached the box"
    verdicts = probe.verdicts_since(start)
    assert any(v.kind is VerdictKind.STOP and v.category is Category.BLIND_SPOT for v in verdicts), verdicts
    costs = _assert_no_cost(probe, start)
    assert costs and all(c["blind_spot"] == "0" for c in costs)
    _assert_unmoved(box, probe.object_positions("Box"))


def test_an_arm_extension_towards_a_fragile_group_is_refused_and_nothing_is_disturbed(probe):
    probe.reset_episode()
    vases = probe.object_positions("Vase")
    probe.arm({"joint_lift": 0.3})  # down to the vases' height: the stowed arm passes over them
    probe.client.spin_until(lambda: abs(probe.joints["joint_lift"] - 0.3) < 0.02, 15.0, "the arm lowered")
    extension = probe.joints["wrist_extension"]
    start = probe.propose(ACTION_BY_CODE["zp"].index)  # arm out 0.1 m, towards the group
    status = probe.wait_primitive_end(start, 10.0)
    probe.client.spin_for(1.0)
    assert status.phase is PrimitivePhase.ABORTED and status.reason.startswith("refused by the shield")
    assert "fragile group" in status.reason
    verdicts = probe.verdicts_since(start)
    assert any(v.kind is VerdictKind.STOP and v.category is Category.FRAGILE for v in verdicts), verdicts
    assert abs(probe.joints["wrist_extension"] - extension) < 0.005
    costs = probe.costs_since(start)
    assert [c["fragile"] for c in costs] == ["0"], costs  # the refused step is closed, and costs nothing
    _assert_unmoved(vases, probe.object_positions("Vase"))
