"""The fail-safe monitor core, driven by an injected clock (``now`` is an input of every call).

The real shield and obstacle memory run underneath: a scan with a wall 5 m away is a clear path, a scan
with returns 0.3 m ahead is an obstacle.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from safevla_node.config import from_mapping
from safevla_node.errors import ConfigError
from safevla_node.safety.monitor import MonitorConfig, SafetyMonitor
from safevla_node.safety.monitor_types import DepthFrame, OdometryData, Source
from safevla_node.safety.primitives import ArmTrajectory, PrimitivePhase, TrajectoryPoint, wrap_angle
from safevla_node.safety.types import Category, DiscreteCommand, TwistCommand, VerdictKind
from sim_bridge.interface import LaserScanData

PERIOD = MonitorConfig().period
JOINTS = {"joint_lift": 0.6, "wrist_extension": 0.1, "joint_wrist_yaw": 0.0, "gripper_aperture": 0.05}


def scan(obstacle_ahead_m: float | None = None) -> LaserScanData:
    """360 rays around the base; a wall 5 m away, or a 40-degree-wide obstacle dead ahead."""
    angles = -math.pi + np.arange(360) * (2 * math.pi / 360)
    ranges = np.full(360, 5.0, dtype=np.float32)
    if obstacle_ahead_m is not None:
        ranges[np.abs(angles) < math.radians(20)] = obstacle_ahead_m
    return LaserScanData(-math.pi, 2 * math.pi / 360, 0.05, 10.0, ranges)


def feed(monitor: SafetyMonitor, now: float, odom: OdometryData = OdometryData(0.0, 0.0, 0.0),
         obstacle_ahead_m: float | None = None, joints: dict[str, float] | None = None) -> None:
    """One round of every required sensor at ``now``."""
    monitor.on_odom(now, odom)
    monitor.on_joint_states(now, JOINTS if joints is None else joints)
    monitor.on_scan(now, scan(obstacle_ahead_m))


def make(**overrides: object) -> SafetyMonitor:
    return SafetyMonitor(dataclasses.replace(MonitorConfig(), **overrides), now=0.0)


FORWARD = TwistCommand(0.2, 0.0)


def test_twist_passes_when_every_required_source_is_fresh():
    monitor = make()
    feed(monitor, 0.0)
    assert monitor.on_twist(0.0, FORWARD).linear_x == pytest.approx(0.2)
    out = monitor.tick(0.01)
    assert out.verdict.kind is VerdictKind.ALLOW
    assert out.twist.linear_x == pytest.approx(0.2)


def test_obstacle_ahead_stops_the_twist():
    monitor = make()
    feed(monitor, 0.0, obstacle_ahead_m=0.3)
    assert monitor.on_twist(0.0, FORWARD).linear_x == 0.0
    out = monitor.tick(0.01)
    assert out.twist.linear_x == 0.0
    assert out.verdict.kind is VerdictKind.STOP and out.verdict.category is not Category.FAULT


def test_stale_scan_stops_at_the_first_tick_after_its_timeout():
    monitor = make()
    feed(monitor, 0.0)
    timeout = monitor.config.source_timeout_s.scan
    t = 0.0
    while t < timeout:
        monitor.on_odom(t, OdometryData(0.0, 0.0, 0.0))
        monitor.on_joint_states(t, JOINTS)
        monitor.on_twist(t, FORWARD)
        assert monitor.tick(t).twist.linear_x > 0, f"stopped early at {t}"
        t += PERIOD
    monitor.on_odom(t, OdometryData(0.0, 0.0, 0.0))
    monitor.on_joint_states(t, JOINTS)
    assert monitor.on_twist(t, FORWARD).linear_x == 0.0  # the immediate path enforces timeouts too
    out = monitor.tick(t)
    assert t - timeout <= PERIOD
    assert out.twist.linear_x == 0.0
    assert out.verdict.kind is VerdictKind.STOP and out.verdict.category is Category.FAULT
    assert "scan stale" in out.verdict.reason


def test_required_source_never_received_stops():
    monitor = make()
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0))
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_twist(0.0, FORWARD)
    out = monitor.tick(0.0)
    assert out.twist.linear_x == 0.0
    assert out.verdict.reason == "required source scan never received"


def test_optional_sources_may_be_missing():
    monitor = make(required_sources=("scan", "odom"))
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0))
    monitor.on_scan(0.0, scan())
    monitor.on_twist(0.0, FORWARD)
    assert monitor.tick(0.0).twist.linear_x == pytest.approx(0.2)
    report = {s.source: s for s in monitor.report(0.0).sources}
    assert report[Source.DEPTH].stale and not report[Source.DEPTH].required


def test_a_robot_requiring_depth_stops_without_it():
    monitor = make(required_sources=("scan", "odom", "depth"))
    feed(monitor, 0.0)
    monitor.on_twist(0.0, FORWARD)
    assert monitor.tick(0.0).verdict.reason == "required source depth never received"


#: A depth image of a wall 0.35 m ahead of the level camera, which the scan (a wall 5 m away) does not show.
WALL_DEPTH = DepthFrame(np.full((24, 32), 0.35, dtype=np.float32), fx=20.0, fy=20.0, cx=16.0, cy=12.0)
HEAD = {"joint_head_pan": 0.0, "joint_head_tilt": -0.5}


def on_a_pan_tilt_head(joints: dict[str, float], depth_required: bool) -> SafetyMonitor:
    """A monitor whose depth camera pose holds at the head pose HEAD, fed every sensor and one depth image."""
    required = ("scan", "odom", "depth") if depth_required else ("scan", "odom")
    monitor = make(required_sources=required, depth_camera_joints=tuple(HEAD),
                   depth_camera_joint_positions=tuple(HEAD.values()))
    feed(monitor, 0.0, joints={**JOINTS, **joints})
    monitor.on_depth(0.0, WALL_DEPTH)
    monitor.on_twist(0.0, FORWARD)
    return monitor


def test_depth_from_a_head_at_its_calibrated_pose_is_used():
    monitor = on_a_pan_tilt_head({**HEAD, "joint_head_pan": 0.01}, depth_required=True)
    verdict = monitor.tick(0.0).verdict
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION, verdict


@pytest.mark.parametrize("joints, reason", [
    ({**HEAD, "joint_head_pan": 0.8}, "joint_head_pan at 0.800 rad; depth_camera_pose_in_base holds at 0.000"),
    ({}, "joint_head_pan not in joint_states yet"),
])
def test_depth_from_a_head_turned_elsewhere_is_dropped(joints, reason):
    # the camera pose holds for one head pose: anywhere else every point would land in the wrong place
    optional = on_a_pan_tilt_head(joints, depth_required=False)
    assert optional.tick(0.0).twist.linear_x == pytest.approx(0.2)  # the wall was not placed
    report = {s.source: s for s in optional.report(0.0).sources}
    assert report[Source.DEPTH].dropped == 1 and reason in report[Source.DEPTH].last_drop_reason
    required = on_a_pan_tilt_head(joints, depth_required=True)
    assert required.tick(0.0).verdict.reason == "required source depth never received"


def test_depth_camera_joints_need_one_position_each():
    with pytest.raises(ConfigError, match="one position per joint"):
        make(depth_camera_joints=("joint_head_pan", "joint_head_tilt"), depth_camera_joint_positions=(0.0,))


def test_deadman_publishes_explicit_zeros_every_tick():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_twist(0.0, FORWARD)
    deadman = monitor.config.deadman_timeout_s
    assert monitor.tick(deadman).twist.linear_x == pytest.approx(0.2)
    for k in range(1, 4):
        t = deadman + k * PERIOD
        feed(monitor, t)
        out = monitor.tick(t)
        assert (out.twist.linear_x, out.twist.angular_z) == (0.0, 0.0)
        assert "deadman" in out.verdict.reason


def test_malformed_command_is_counted_answered_with_zero_and_holds_stop():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_twist(0.0, FORWARD)
    zero = monitor.on_malformed(0.1, Source.CMD_VEL, "twist is not finite: nan")
    assert (zero.linear_x, zero.angular_z) == (0.0, 0.0)
    hold = monitor.config.fault_hold_s
    feed(monitor, 0.1)
    monitor.on_twist(0.1, FORWARD)
    out = monitor.tick(0.1)
    assert out.twist.linear_x == 0.0
    assert out.verdict.reason == "malformed cmd_vel_in dropped: twist is not finite: nan"
    report = {s.source: s for s in monitor.report(0.1).sources}
    assert report[Source.CMD_VEL].dropped == 1
    assert report[Source.CMD_VEL].last_drop_reason == "twist is not finite: nan"
    t = 0.1 + hold
    feed(monitor, t)
    monitor.on_twist(t, FORWARD)
    assert monitor.tick(t).twist.linear_x == pytest.approx(0.2)  # the hold expired


def test_estop_latches_until_reset():
    monitor = make()
    feed(monitor, 0.0)
    assert monitor.estop(0.0, "test").linear_x == 0.0
    for t in (0.1, 0.2, 5.0):
        feed(monitor, t)
        monitor.on_twist(t, FORWARD)
        out = monitor.tick(t)
        assert out.twist.linear_x == 0.0 and "e-stop latched" in out.verdict.reason
    assert monitor.reset_estop() is True
    assert monitor.reset_estop() is False
    monitor.on_twist(5.0, FORWARD)
    assert monitor.tick(5.0).twist.linear_x == pytest.approx(0.2)


def run_proposal(monitor: SafetyMonitor, command: DiscreteCommand, max_time: float = 10.0,
                 obstacle_at: float | None = None):
    """Kinematic loop: odometry integrates the monitor's twist; returns the statuses and the final pose."""
    odom = OdometryData(0.0, 0.0, 0.0)
    feed(monitor, 0.0, odom)
    monitor.on_action_proposal(0.0, command)
    statuses = []
    t = 0.0
    while t < max_time:
        out = monitor.tick(t)
        statuses += out.statuses
        if statuses and statuses[-1].phase is not PrimitivePhase.RUNNING:
            break
        t += PERIOD
        v, w = out.twist.linear_x, out.twist.angular_z
        odom = OdometryData(odom.x + v * math.cos(odom.yaw) * PERIOD,
                            odom.y + v * math.sin(odom.yaw) * PERIOD,
                            wrap_angle(odom.yaw + w * PERIOD), v, w)
        feed(monitor, t, odom, obstacle_ahead_m=obstacle_at if t > 0.3 else None)
    return statuses, odom


def test_move_ahead_proposal_runs_its_primitive_to_done():
    statuses, odom = run_proposal(make(), DiscreteCommand(0))
    running, done = PrimitivePhase.RUNNING, PrimitivePhase.DONE
    assert [s.phase for s in statuses] == [running, done]  # one deciding status, then the end
    assert (statuses[0].verdict, statuses[-1].verdict) == ("allow", "")
    assert statuses[-1].proposal_id == 1 and statuses[-1].executed == 0
    assert odom.x == pytest.approx(0.2, abs=0.011)


def test_rotate_proposal_turns_thirty_degrees():
    statuses, odom = run_proposal(make(), DiscreteCommand(2))
    assert statuses[-1].phase is PrimitivePhase.DONE
    assert odom.yaw == pytest.approx(math.radians(30), abs=0.03)


def test_running_primitive_aborts_when_an_obstacle_appears():
    statuses, odom = run_proposal(make(), DiscreteCommand(0), obstacle_at=0.15)
    assert statuses[-1].phase is PrimitivePhase.ABORTED
    assert "shield" in statuses[-1].reason
    assert odom.x < 0.2


def test_proposal_is_refused_while_a_required_source_is_stale():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(1.0, DiscreteCommand(0))
    statuses = monitor.tick(1.0).statuses
    assert statuses[-1].phase is PrimitivePhase.ABORTED
    assert statuses[-1].reason.startswith("refused: required source")


def test_proposal_into_an_obstacle_is_refused_or_replaced_before_it_starts():
    monitor = make()
    feed(monitor, 0.0, obstacle_ahead_m=0.3)
    monitor.on_action_proposal(0.0, DiscreteCommand(0))
    out = monitor.tick(0.0)
    status = out.statuses[-1]
    refused = status.phase is PrimitivePhase.ABORTED and "refused by the shield" in status.reason
    replaced = status.executed != 0
    assert refused or replaced, status
    assert out.verdict.kind in (VerdictKind.STOP, VerdictKind.REPLACE)  # the safety state shows why
    assert out.verdict.category is Category.COLLISION


def test_proposal_with_a_distribution_is_replaced_by_the_most_probable_safe_action():
    monitor = make()
    feed(monitor, 0.0, obstacle_ahead_m=0.3)
    probabilities = [0.0] * 20
    probabilities[0], probabilities[2] = 0.7, 0.3  # move ahead (blocked), else rotate left
    monitor.on_action_proposal(0.0, DiscreteCommand(0, tuple(probabilities)))
    out = monitor.tick(0.0)
    assert out.verdict.kind is VerdictKind.REPLACE and out.verdict.replacement == 2
    assert (out.statuses[-1].phase, out.statuses[-1].action, out.statuses[-1].executed) == (
        PrimitivePhase.RUNNING, 0, 2)


def test_running_primitive_aborts_within_a_period_of_the_policy_heartbeat_going_stale():
    monitor = make()
    timeout = monitor.config.source_timeout_s.policy_heartbeat
    feed(monitor, 0.0)
    monitor.on_policy_heartbeat(0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(0))
    last_beat, t, statuses = 0.2, 0.0, []
    while t < 2.0:
        feed(monitor, t)
        if t <= last_beat:
            monitor.on_policy_heartbeat(t)  # the policy process dies after this one
        out = monitor.tick(t)
        statuses += out.statuses
        if statuses[-1].phase is not PrimitivePhase.RUNNING:
            break
        assert out.twist.linear_x > 0.0, f"stopped early at {t}"
        t += PERIOD
    assert last_beat + timeout < t <= last_beat + timeout + PERIOD + 1e-9
    assert out.twist.linear_x == 0.0
    assert out.verdict.kind is VerdictKind.STOP and out.verdict.category is Category.FAULT
    assert statuses[-1].phase is PrimitivePhase.ABORTED and statuses[-1].reason.startswith("policy lost")
    report = {s.source: s for s in monitor.report(t).sources}
    assert report[Source.POLICY_HEARTBEAT].stale and report[Source.POLICY_HEARTBEAT].timeout == timeout


def test_without_any_heartbeat_primitives_run_unless_the_heartbeat_is_required():
    optional = make()
    feed(optional, 0.0)
    optional.on_action_proposal(0.0, DiscreteCommand(0))
    assert optional.tick(0.05).twist.linear_x > 0.0
    required = make(required_sources=("scan", "odom", "joint_states", "policy_heartbeat"))
    feed(required, 0.0)
    required.on_action_proposal(0.0, DiscreteCommand(0))
    out = required.tick(0.05)
    assert out.twist.linear_x == 0.0 and out.verdict.reason == "policy lost: no heartbeat received"
    assert out.statuses[-1].phase is PrimitivePhase.ABORTED


def test_a_restarted_policy_whose_heartbeat_lags_its_first_proposal_is_supervised_once_it_arrives():
    monitor = make()
    monitor.on_policy_heartbeat(0.0)  # the old policy, which then died
    feed(monitor, 5.0)
    monitor.on_action_proposal(5.0, DiscreteCommand(0))  # the new one's proposal overtakes its heartbeat
    assert monitor.tick(5.05).twist.linear_x > 0.0
    monitor.on_policy_heartbeat(5.1)
    feed(monitor, 5.1)
    assert monitor.tick(5.1).twist.linear_x > 0.0
    feed(monitor, 5.45)
    out = monitor.tick(5.45)  # and now that one is lost too
    assert out.twist.linear_x == 0.0 and out.statuses[-1].reason.startswith("policy lost: heartbeat stale")


def test_twists_are_governed_by_the_deadman_not_by_the_policy_heartbeat():
    monitor = make(required_sources=("scan", "odom", "joint_states", "policy_heartbeat"))
    monitor.on_policy_heartbeat(0.0)
    feed(monitor, 5.0)
    assert monitor.on_twist(5.0, FORWARD).linear_x == pytest.approx(0.2)
    assert monitor.tick(5.01).twist.linear_x == pytest.approx(0.2)


def test_twist_preempts_a_running_primitive():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(0))
    monitor.on_twist(0.01, TwistCommand(0.0, 0.3))
    out = monitor.tick(0.02)
    assert out.statuses[-1].phase is PrimitivePhase.ABORTED
    assert out.twist.angular_z == pytest.approx(0.3)


def test_arm_proposal_sends_a_relative_joint_target_and_finishes_on_joint_states():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(11))  # arm up 0.1 m
    out = monitor.tick(0.0)
    assert out.arm is not None
    assert out.arm.final_targets() == {"joint_lift": pytest.approx(0.7)}
    feed(monitor, 0.5, joints=dict(JOINTS, joint_lift=0.7))
    assert monitor.tick(0.5).statuses[-1].phase is PrimitivePhase.DONE


def test_arm_motion_is_held_at_the_current_position_on_stop():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_arm_trajectory(0.0, ArmTrajectory(("joint_lift",), (TrajectoryPoint((0.8,), 2.0),)))
    assert monitor.tick(0.0).arm.final_targets() == {"joint_lift": 0.8}
    feed(monitor, 0.5, joints=dict(JOINTS, joint_lift=0.65))
    monitor.estop(0.5)
    hold = monitor.tick(0.5).arm
    assert hold is not None and hold.final_targets() == {"joint_lift": 0.65}
    assert monitor.tick(0.55).arm is None  # held once


def test_safety_state_is_published_on_change_and_at_its_rate():
    monitor = make(state_rate_hz=1.0)
    feed(monitor, 0.0)
    assert monitor.tick(0.0).publish_state  # first tick
    assert not monitor.tick(0.05).publish_state
    monitor.estop(0.1)
    assert monitor.tick(0.1).publish_state  # changed
    assert not monitor.tick(0.5).publish_state
    assert monitor.tick(1.1).publish_state  # 1 Hz


def test_a_clock_jumping_back_forgets_every_input():
    monitor = make()
    feed(monitor, 100.0)
    monitor.on_twist(100.0, FORWARD)
    assert monitor.tick(100.0).twist.linear_x > 0
    out = monitor.tick(3.0)  # a bag looped under use_sim_time
    assert out.twist.linear_x == 0.0 and "never received" in out.verdict.reason


def test_a_clock_stepping_back_a_little_forgets_inputs_before_a_twist_is_judged():
    monitor = make()
    feed(monitor, 10.0)
    monitor.on_twist(10.0, FORWARD)
    # back by 0.9 s: every age would read 0.9 s younger, and the twist and sensors count as fresh for longer
    assert monitor.on_twist(9.1, FORWARD).linear_x == 0.0
    out = monitor.tick(9.15)
    assert out.twist.linear_x == 0.0 and "never received" in out.verdict.reason


def test_a_twist_held_back_by_a_malformed_one_does_not_return_when_the_hold_ends():
    monitor = make(deadman_timeout_s=3.0, fault_hold_s=1.0)
    feed(monitor, 0.0)
    monitor.on_twist(0.0, FORWARD)
    assert monitor.on_malformed(0.1, Source.CMD_VEL, "linear.x is NaN").linear_x == 0.0
    for t in (0.5, 1.15, 2.0):
        feed(monitor, t)
        assert monitor.tick(t).twist.linear_x == 0.0, f"the old twist came back at {t}"


def test_an_internal_error_stops_drops_the_command_and_holds_a_moving_arm():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_arm_trajectory(0.0, ArmTrajectory(("joint_lift",), (TrajectoryPoint((0.8,), 2.0),)))
    assert monitor.tick(0.0).arm is not None
    monitor.on_twist(0.1, FORWARD)
    feed(monitor, 0.2, joints=dict(JOINTS, joint_lift=0.7))
    hold = monitor.fail_safe(0.2, "internal error: handling scan raised ValueError: boom")
    assert hold is not None and hold.final_targets() == {"joint_lift": 0.7}
    assert monitor.verdict.kind is VerdictKind.STOP and "internal error" in monitor.verdict.reason
    out = monitor.tick(0.25)
    assert out.twist.linear_x == 0.0 and "ValueError: boom" in out.verdict.reason
    feed(monitor, 1.5)
    assert monitor.tick(1.5).twist.linear_x == 0.0  # the twist was dropped, not resumed after the hold
    assert monitor.fail_safe(1.6, "again") is None  # no arm motion under way: nothing to hold


def test_every_waypoint_of_an_arm_trajectory_is_judged_not_only_the_last():
    monitor = make()
    feed(monitor, 0.0)
    through_limits = ArmTrajectory(("joint_lift", "wrist_extension"),
                                   (TrajectoryPoint((5.0, 3.0), 1.0), TrajectoryPoint((0.6, 0.1), 2.0)))
    monitor.on_arm_trajectory(0.0, through_limits)
    out = monitor.tick(0.0)
    assert out.arm is None and out.verdict.kind is VerdictKind.STOP and "outside" in out.verdict.reason
    within = ArmTrajectory(("joint_lift",), (TrajectoryPoint((0.7,), 1.0), TrajectoryPoint((0.8,), 2.0)))
    monitor.on_arm_trajectory(0.1, within)
    assert monitor.tick(0.1).arm == within


def test_changing_the_obstacle_memory_keeps_what_it_remembers():
    monitor = make()
    feed(monitor, 0.0, obstacle_ahead_m=0.3)
    monitor.on_odom(0.1, OdometryData(0.0, 0.0, 0.0))
    monitor.on_joint_states(0.1, JOINTS)
    for change in ({"decay_s": 9.0}, {"resolution_m": 0.1}):
        config = dataclasses.replace(monitor.config, obstacle_memory=dataclasses.replace(
            monitor.config.obstacle_memory, **change))
        monitor.reconfigure(config)
        assert monitor.on_twist(0.1, FORWARD).linear_x == 0.0, f"the obstacle was forgotten after {change}"


@pytest.mark.parametrize(("overrides", "match"), [
    ({"required_sources": ["scan", "lidar"]}, r"required_sources contains 'lidar'; valid sources"),
    ({"required_sources": ["odom"]}, r"must include scan or depth"),
    ({"shield": {"horizon_s": math.inf}}, r"shield: horizon_s must be a finite number"),
    ({"shield": {"escape_tolerance_m": math.inf}}, r"escape_tolerance_m must be a finite number"),
    ({"obstacle_memory": {"decay_s": math.inf}}, r"decay_s must be a finite number"),
    ({"primitive": {"gripper_closed": math.nan}}, r"gripper_closed must be a finite number"),
    ({"deadman_timeout_s": 0.01}, r"deadman_timeout_s=0.01 is out of range \[0.05"),
    ({"control_rate_hz": 0.0}, r"control_rate_hz=0.0 is out of range"),
    ({"source_timeout_s": {"scan": -1.0}}, r"source_timeout_s: scan=-1.0 is out of range"),
    ({"source_timeout_s": {"policy_heartbeat": 0.0}},
     r"source_timeout_s: policy_heartbeat=0.0 is out of range"),
    ({"scan_pose_in_base": [0.0, math.inf, 0.0]}, r"scan_pose_in_base=.* must be finite"),
    ({"frames": {"scan": ""}}, r"frames: scan must not be empty"),
    ({"shield": {"horizon_s": -1.0}}, r"shield: .*horizon_s"),
])
def test_monitor_config_rejects_bad_values(overrides, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(MonitorConfig, overrides)


def _forward_scan(obstacle_m: float | None = None) -> LaserScanData:
    """A 90-degree scan ahead only (a camera-like field of view): what is behind is never re-observed."""
    ranges = np.full(90, 5.0, dtype=np.float32)
    if obstacle_m is not None:
        ranges[35:55] = obstacle_m
    return LaserScanData(-math.pi / 4, math.pi / 2 / 90, 0.05, 10.0, ranges)


@pytest.mark.parametrize("reset", [False, True])
def test_episode_reset_forgets_obstacles_of_the_previous_episode(reset):
    monitor = make()
    monitor.on_odom(0.0, OdometryData(0.0, 0.0, 0.0))
    monitor.on_joint_states(0.0, JOINTS)
    monitor.on_scan(0.0, _forward_scan(obstacle_m=0.35))  # an obstacle 0.35 m ahead, in the old episode
    if reset:
        monitor.on_episode_reset(0.05)
    # The new episode starts facing the other way: the old obstacle would be behind, never seen again.
    monitor.on_odom(0.1, OdometryData(0.0, 0.0, math.pi))
    monitor.on_joint_states(0.1, JOINTS)
    monitor.on_scan(0.1, _forward_scan())
    backing = monitor.on_twist(0.1, TwistCommand(-0.2, 0.0))
    if reset:
        assert backing.linear_x == pytest.approx(-0.2)
    else:
        assert backing.linear_x == 0.0
        assert monitor.tick(0.11).verdict.category is Category.BLIND_SPOT


def test_episode_reset_aborts_a_running_primitive_and_is_acknowledged_but_keeps_the_estop():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(0))
    monitor.tick(0.05)
    assert monitor.primitive_status.phase is PrimitivePhase.RUNNING
    monitor.on_episode_reset(0.06)
    aborted, acknowledged = monitor.tick(0.06).statuses
    assert (aborted.phase, aborted.proposal_id, aborted.reason) == (PrimitivePhase.ABORTED, 1, "episode reset")
    assert (acknowledged.phase, acknowledged.proposal_id) == (PrimitivePhase.IDLE, 1)
    assert monitor.primitive_status.phase is PrimitivePhase.IDLE
    monitor.on_episode_reset(0.065)  # nothing running: the acknowledgement alone
    assert [s.phase for s in monitor.tick(0.065).statuses] == [PrimitivePhase.IDLE]
    monitor.estop(0.07, "test")
    monitor.on_episode_reset(0.08)
    assert monitor.estopped


def test_a_finished_proposal_carries_the_stamp_of_the_odometry_it_ended_on():
    monitor = make()
    feed(monitor, 0.0)
    monitor.on_action_proposal(0.0, DiscreteCommand(11))  # arm up 0.1 m
    assert monitor.tick(0.0).statuses[-1].stamp is None  # running: no end yet
    monitor.on_odom(0.5, OdometryData(0.0, 0.0, 0.0), stamp=0.45)
    feed(monitor, 0.5, joints=dict(JOINTS, joint_lift=0.7))
    monitor.on_odom(0.5, OdometryData(0.0, 0.0, 0.0), stamp=0.48)
    done = monitor.tick(0.5).statuses[-1]
    assert done.phase is PrimitivePhase.DONE and done.stamp == 0.48
