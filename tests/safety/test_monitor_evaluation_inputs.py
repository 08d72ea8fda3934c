"""What the monitor core needs to judge proposals exactly as in-process evaluation does: the task's target,
each scan placed at the pose it was taken from, one deciding status per proposal carrying the verdict, and
(discrete execution) steps that end where the executor reports them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safevla_node.errors import ConfigError, MessageError
from safevla_node.safety.monitor import MonitorConfig, SafetyMonitor
from safevla_node.safety.monitor_types import OdometryData, PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import DiscreteCommand, TwistCommand, VerdictKind
from tests.safety.test_monitor_core import FORWARD, JOINTS, feed, scan


def make(**overrides: object) -> SafetyMonitor:
    return SafetyMonitor(dataclasses.replace(MonitorConfig(), **overrides), now=0.0)


def test_the_target_comes_from_the_parameter_until_the_task_target_topic_names_one():
    monitor = make(target_object_id="Mug_1")
    assert monitor.target_object_id == "Mug_1"
    monitor.on_task_target("Apple_3")
    assert monitor.target_object_id == "Apple_3"
    monitor.reconfigure(dataclasses.replace(monitor.config, target_object_id="Bowl_2"))
    assert monitor.target_object_id == "Apple_3"  # the simulator's episode target wins


def test_an_empty_task_target_means_no_target_even_with_a_parameter():
    monitor = make(target_object_id="Mug_1")
    monitor.on_task_target("")  # an infeasible task: nothing may be exempted
    assert monitor.target_object_id is None
    assert make().target_object_id is None


def test_a_scan_is_placed_at_the_pose_of_its_stamp_even_when_handled_after_a_newer_pose():
    def forward_after_late_scan(stamped: bool) -> float:
        monitor = make()
        monitor.on_joint_states(0.0, JOINTS)
        monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
        monitor.on_odom(0.0, OdometryData(1.0, 0.0, 0.0), stamp=2.0)  # the robot moved 1 m on
        # taken at x=0 (stamp 1): an obstacle 0.3 m ahead of the old pose is 0.7 m behind the new one
        monitor.on_scan(0.0, scan(obstacle_ahead_m=0.3), stamp=1.0 if stamped else None)
        return monitor.on_twist(0.0, TwistCommand(0.2, 0.0)).linear_x

    assert forward_after_late_scan(stamped=True) == pytest.approx(0.2)
    assert forward_after_late_scan(stamped=False) == 0.0  # placed at the new pose: a phantom ahead


def test_a_refused_proposal_reports_one_aborted_status_with_the_stop_verdict():
    monitor = make()
    feed(monitor, 0.0, obstacle_ahead_m=0.15)
    monitor.on_action_proposal(0.0, DiscreteCommand(0))  # move ahead into the obstacle
    statuses = monitor.tick(0.01).statuses
    assert [(s.phase, s.verdict) for s in statuses] == [(PrimitivePhase.ABORTED, "stop")]


def test_an_allowed_proposal_reports_running_with_its_verdict_once():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(0))
    statuses = monitor.tick(0.01).statuses
    assert [(s.phase, s.verdict, s.executed) for s in statuses] == [(PrimitivePhase.RUNNING, "allow", 0)]
    assert VerdictKind[statuses[0].verdict.upper()] is VerdictKind.ALLOW


def test_a_scan_of_the_previous_episode_handled_after_the_clock_restarted_leaves_no_phantom():
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=40.0)
    monitor.on_episode_reset(0.0)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=0.1)  # the new episode's clock starts again
    monitor.on_scan(0.0, scan(), stamp=0.1)
    monitor.on_scan(0.0, scan(obstacle_ahead_m=0.3), stamp=40.0)  # late: taken in the old episode
    assert monitor.on_twist(0.0, TwistCommand(0.2, 0.0)).linear_x == pytest.approx(0.2)


def test_a_scan_handled_before_the_odometry_of_its_stamp_waits_for_it():
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
    # a discrete step jumped the robot 1 m on; its scan (an obstacle 0.3 m ahead) overtakes its odometry
    monitor.on_scan(0.0, scan(obstacle_ahead_m=0.3), stamp=1.5)
    monitor.on_odom(0.0, OdometryData(1.0, 0.0, 0.0), stamp=1.5)
    assert monitor.on_twist(0.0, FORWARD).linear_x == 0.0  # at x=1.3, ahead: not at 0.3, behind


def test_a_scan_stamped_far_ahead_of_odometry_is_dropped_and_the_diagnostics_say_why():
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
    monitor.on_scan(0.0, scan(), stamp=1.6)
    report = next(s for s in monitor.report(0.0).sources if s.source.value == "scan")
    assert (report.received, report.dropped) == (0, 1)
    assert "0.600 s after the newest odometry" in report.last_drop_reason
    assert monitor.tick(0.0).verdict.kind is VerdictKind.STOP  # not a fresh scan


def test_a_repeated_scan_is_not_a_fresh_one_and_a_blind_one_is_malformed():
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
    monitor.on_scan(0.0, scan(), stamp=1.0)
    monitor.on_twist(0.0, FORWARD)
    for t in (0.2, 0.4, 0.6):  # a frozen driver: the same scan, stamp and all, while odometry goes on
        monitor.on_odom(t, OdometryData(0.0, 0.0, 0.0), stamp=1.0 + t)
        monitor.on_joint_states(t, JOINTS)
        monitor.on_scan(t, scan(), stamp=1.0)
        monitor.on_twist(t, FORWARD)
    out = monitor.tick(0.6)
    assert out.twist.linear_x == 0.0 and out.verdict.reason == "required source scan stale (> 0.5 s)"
    report = next(s for s in monitor.report(0.6).sources if s.source.value == "scan")
    assert (report.received, report.dropped) == (1, 3) and "repeated" in report.last_drop_reason
    blind = scan()
    blind.ranges[:] = np.nan
    with pytest.raises(MessageError, match="100% of the scan's ranges are NaN"):
        monitor.on_scan(0.7, blind, stamp=1.7)
    blind.ranges[:36] = 5.0  # 90% NaN is still within the default 0.9
    monitor.on_scan(0.7, blind, stamp=1.7)


def test_a_held_scan_of_the_previous_episode_is_dropped_when_the_clock_restarts():
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=40.0)
    monitor.on_scan(0.0, scan(obstacle_ahead_m=0.3), stamp=40.1)  # held: no odometry at 40.1 yet
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=0.1)  # the new episode's clock starts again
    monitor.on_scan(0.0, scan(), stamp=0.1)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=41.0)  # would release a scan still held
    assert monitor.on_twist(0.0, FORWARD).linear_x == pytest.approx(0.2)


def test_a_scan_whose_geometry_is_invalid_is_rejected_on_arrival_even_when_it_would_wait():
    monitor = make()
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
    bad = dataclasses.replace(scan(), angle_increment=0.0)
    with pytest.raises(MessageError, match="angle_increment != 0"):
        monitor.on_scan(0.0, bad, stamp=1.1)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.2)  # nothing held to fail here


ODOM_PERIOD_S, SCAN_PERIOD_S = 0.04, 0.1  # the sim bridge's 25 Hz odometry and 10 Hz scan


@settings(max_examples=60, deadline=None)
@given(jump_index=st.integers(1, 10), order=st.lists(st.booleans(), min_size=16, max_size=16))
def test_where_a_scan_lands_does_not_depend_on_how_it_interleaves_with_odometry(
        jump_index: int, order: list[bool]) -> None:
    """Each topic arrives in order, the two interleave at random (as a loaded executor handles them); the
    robot jumps 1 m ahead at an odometry stamp, and every scan sees an obstacle 0.3 m ahead of where it was
    taken. Forward is blocked exactly when a scan was taken after the jump (its obstacle lies ahead)."""
    odoms = [(k * ODOM_PERIOD_S, OdometryData(1.0 if k >= jump_index else 0.0, 0.0, 0.0)) for k in range(11)]
    scans = [j * SCAN_PERIOD_S for j in range(5)]
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    streams = {True: list(odoms), False: list(scans)}
    for odom_next in order:
        queue = streams[odom_next] or streams[not odom_next]
        item = queue.pop(0)
        if queue is streams[True]:
            monitor.on_odom(0.0, item[1], stamp=item[0])
        else:
            monitor.on_scan(0.0, scan(obstacle_ahead_m=0.3), stamp=item)
    jump_stamp = jump_index * ODOM_PERIOD_S
    blocked = any(s >= jump_stamp - 1e-9 for s in scans)
    assert (monitor.on_twist(0.0, FORWARD).linear_x == 0.0) is blocked


def after_a_step(end_stamp: float = 0.48) -> SafetyMonitor:
    """A monitor whose arm primitive (lift up 0.1 m) ended on odometry stamped ``end_stamp``; its scans so far
    came unstamped, so none is known to be taken after the step."""
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(11))
    monitor.tick(0.0)
    feed(monitor, 0.5, joints=dict(JOINTS, joint_lift=0.7))
    monitor.on_odom(0.5, OdometryData(0.0, 0.0, 0.0), stamp=end_stamp)
    assert monitor.tick(0.5).statuses[-1].phase is PrimitivePhase.DONE
    return monitor


def test_a_proposal_after_a_step_is_judged_on_a_scan_taken_after_the_step_ended():
    monitor = after_a_step()
    monitor.on_action_proposal(0.5, DiscreteCommand(0))  # move ahead: the old scan shows a free path
    out = monitor.tick(0.55)
    assert out.statuses == () and out.twist.linear_x == 0.0  # undecided: waits, the robot stopped
    monitor.on_scan(0.6, scan(obstacle_ahead_m=0.15), stamp=0.5)  # taken after the step: an obstacle
    assert monitor.primitive_status.phase is PrimitivePhase.RUNNING  # held: no odometry at 0.5 yet
    monitor.on_odom(0.6, OdometryData(0.0, 0.0, 0.0), stamp=0.5)
    assert [(s.phase, s.verdict) for s in monitor.tick(0.6).statuses] == [(PrimitivePhase.ABORTED, "stop")]


def test_a_proposal_waiting_for_a_post_step_scan_is_refused_after_the_scan_timeout():
    monitor = after_a_step()
    monitor.on_action_proposal(0.5, DiscreteCommand(2))
    timeout = monitor.config.source_timeout_s.scan
    assert monitor.tick(0.5 + timeout).statuses == ()
    (refused,) = monitor.tick(0.5 + timeout + 0.05).statuses
    assert refused.phase is PrimitivePhase.ABORTED
    assert "no scan taken after the previous step arrived within" in refused.reason


def test_after_an_episode_reset_a_proposal_does_not_wait_for_a_scan_of_the_old_clock():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=40.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(11))
    assert monitor.tick(0.0).statuses[-1].phase is PrimitivePhase.RUNNING
    monitor.on_episode_reset(0.1)  # ends the primitive on odometry stamped 40.0, of the old clock
    monitor.tick(0.1)
    monitor.on_action_proposal(0.1, DiscreteCommand(2))
    assert [(s.phase, s.verdict) for s in monitor.tick(0.15).statuses] == [(PrimitivePhase.RUNNING, "allow")]


# --- discrete execution: an executor runs each action whole and reports it ------------------------------


def discrete_proposal(action: int) -> SafetyMonitor:
    """A monitor under ``action_execution: discrete`` whose proposal ``action`` (id 1) has just been let
    through on odometry stamped 1.0."""
    monitor = make(action_execution="discrete")
    feed(monitor, 1.0)
    monitor.on_odom(1.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
    monitor.on_action_proposal(1.0, DiscreteCommand(action))
    (running,) = monitor.tick(1.0).statuses
    assert (running.phase, running.proposal_id, running.verdict) == (PrimitivePhase.RUNNING, 1, "allow")
    return monitor


def result(proposal_id: int, stamp: float) -> PrimitiveStatus:
    return PrimitiveStatus(PrimitivePhase.DONE, proposal_id, 0, 0, "executed whole", "", stamp)


def test_under_discrete_execution_the_executor_s_report_ends_the_step_at_its_stamp():
    monitor = discrete_proposal(0)  # move ahead
    monitor.on_action_result(1.1, result(1, stamp=1.4))
    (done,) = monitor.tick(1.1).statuses
    assert (done.phase, done.stamp) == (PrimitivePhase.DONE, 1.4)
    # The next proposal waits for a scan taken after 1.4: one from before the jump does not do.
    monitor.on_action_proposal(1.2, DiscreteCommand(0))
    monitor.on_odom(1.2, OdometryData(0.0, 0.0, 0.0), stamp=1.2)
    monitor.on_scan(1.2, scan(), stamp=1.2)
    assert monitor.tick(1.2).statuses == ()
    monitor.on_joint_states(1.4, JOINTS)
    monitor.on_odom(1.4, OdometryData(0.2, 0.0, 0.0), stamp=1.4)
    monitor.on_scan(1.4, scan(obstacle_ahead_m=0.15), stamp=1.4)  # after the step: an obstacle ahead
    assert [(s.phase, s.verdict) for s in monitor.tick(1.4).statuses] == [(PrimitivePhase.ABORTED, "stop")]


@pytest.mark.parametrize(("action", "why"), [(0, "the shield's twist check"), (8, "the gripper's settle time")])
def test_under_discrete_execution_nothing_but_the_report_ends_a_step(action: int, why: str):
    """The world jumps when the executor runs the action, and the jumped /clock can reach the monitor before
    the odometry that shows it: a primitive stepped on the old world would end there (a move towards an
    obstacle stopped by the twist check, a gripper action 'settled' by the clock), and the next proposal
    would be judged on the world before the step."""
    monitor = discrete_proposal(action)
    feed(monitor, 2.8, obstacle_ahead_m=0.05)  # 1.8 s later, still the world before the step
    out = monitor.tick(2.8)
    assert out.statuses == (), why
    assert out.twist.linear_x == 0.0 and out.twist.angular_z == 0.0 and out.arm is None  # commands nothing
    monitor.on_action_result(2.9, result(1, stamp=3.0))
    assert [s.phase for s in monitor.tick(2.9).statuses] == [PrimitivePhase.DONE]


def test_a_report_that_the_action_did_not_run_aborts_the_step_and_a_running_one_is_malformed():
    monitor = discrete_proposal(0)
    monitor.on_action_result(1.1, dataclasses.replace(result(1, stamp=1.1), phase=PrimitivePhase.ABORTED,
                                                      reason="not run: the episode is over"))
    (aborted,) = monitor.tick(1.1).statuses
    assert (aborted.phase, aborted.reason) == (PrimitivePhase.ABORTED, "move_ahead: not run: the episode is over")
    with pytest.raises(MessageError, match="an action result is done or aborted, not 'running'"):
        monitor.on_action_result(1.2, dataclasses.replace(result(2, stamp=1.2), phase=PrimitivePhase.RUNNING))


def test_a_report_on_another_proposal_or_under_continuous_execution_ends_nothing():
    monitor = discrete_proposal(0)
    monitor.on_action_result(1.1, result(7, stamp=2.3))  # a late report of an earlier proposal
    assert monitor.tick(1.1).statuses == ()
    continuous = make()
    feed(continuous, 0.0)
    continuous.on_action_proposal(0.0, DiscreteCommand(0))
    continuous.tick(0.0)
    continuous.on_action_result(0.1, result(1, stamp=2.3))
    assert continuous.primitive_status.phase is PrimitivePhase.RUNNING


def test_without_a_report_a_discrete_step_is_aborted_after_the_primitive_timeout():
    monitor = discrete_proposal(11)  # arm up
    timeout = monitor.config.primitive.timeout
    feed(monitor, 1.0 + timeout)
    assert monitor.tick(1.0 + timeout).statuses == ()
    feed(monitor, 1.1 + timeout)
    (aborted,) = monitor.tick(1.1 + timeout).statuses
    assert aborted.phase is PrimitivePhase.ABORTED and "no action result within" in aborted.reason


def test_an_unknown_action_execution_is_a_config_error():
    with pytest.raises(ConfigError, match=r"action_execution='teleport' is not one of \['continuous', 'discrete'\]"):
        MonitorConfig(action_execution="teleport")


def test_a_scan_whose_own_odometry_was_lost_is_placed_at_the_nearest_pose_not_before_the_jump():
    """A discrete step jumped the robot 1 m on at stamp 2.0; the odometry of that stamp was lost (best effort,
    overwritten in a loaded subscriber's queue), the next one came 0.04 s later. The last pose before the
    jump is a whole action older than the scan: placed there, the obstacle 0.3 m ahead would be missed."""
    monitor = make()
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0), stamp=1.0)
    monitor.on_odom(0.0, OdometryData(1.0, 0.0, 0.0), stamp=2.04)
    monitor.on_scan(0.0, scan(obstacle_ahead_m=0.3), stamp=2.0)
    assert monitor.on_twist(0.0, FORWARD).linear_x == 0.0  # at x=1.3, ahead
