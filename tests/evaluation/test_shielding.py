"""The in-loop shield rule (allow / replace / stop) with the real Shield, and the world estimate it sees."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from safevla_node.actions import ACTION_BY_CODE, NUM_ACTIONS
from safevla_node.evaluation.shielding import ShieldWorld, shielded_action
from safevla_node.safety.shield import Shield
from safevla_node.safety.types import ObjectState, RobotState, VerdictKind, WorldEstimate, WorldSnapshot
from sim_bridge.interface import LaserScanData, Observation

AHEAD = ACTION_BY_CODE["m"].index
LEFT = ACTION_BY_CODE["l"].index
END = ACTION_BY_CODE["end"].index


def wall_ahead(distance: float = 0.35) -> WorldEstimate:
    """A wall across the robot's path ``distance`` m ahead, seen right now."""
    ys = np.linspace(-0.6, 0.6, 25)
    points = np.stack([np.full_like(ys, distance), ys], axis=1)
    return WorldEstimate(RobotState(), points, np.ones(len(points), dtype=bool))


def probabilities(**mass: float) -> np.ndarray:
    probs = np.zeros(NUM_ACTIONS)
    for code, p in mass.items():
        probs[ACTION_BY_CODE[code].index] = p
    return probs


def test_an_allowed_action_is_executed_unchanged() -> None:
    decision = shielded_action(Shield(), WorldEstimate(RobotState()), AHEAD, probabilities(m=1.0))
    assert decision.verdict.kind is VerdictKind.ALLOW
    assert decision.executed == AHEAD


def test_a_blocked_action_is_replaced_by_the_most_probable_safe_one() -> None:
    decision = shielded_action(Shield(), wall_ahead(), AHEAD, probabilities(m=0.7, l=0.2, r=0.1))
    assert decision.verdict.kind is VerdictKind.REPLACE
    assert (decision.proposed, decision.executed) == (AHEAD, LEFT)


def test_a_blocked_action_without_alternatives_executes_nothing() -> None:
    decision = shielded_action(Shield(), wall_ahead(), AHEAD, probabilities(m=1.0))
    assert decision.verdict.kind is VerdictKind.STOP
    assert decision.executed is None
    assert "collision" in decision.verdict.reason


def test_ending_the_episode_is_never_blocked() -> None:
    decision = shielded_action(Shield(), wall_ahead(0.25), END, probabilities(end=1.0))
    assert decision.executed == END


def scan_observation(robot: RobotState, ranges: np.ndarray, time: float, objects: list[ObjectState]) -> Observation:
    beams = len(ranges)
    scan = LaserScanData(-math.pi, 2 * math.pi / beams, 0.05, 10.0, ranges)
    snapshot = WorldSnapshot.of(time, robot, objects)
    return Observation(time, None, None, (0.0, 0.0), {}, scan, snapshot)


def test_shield_world_puts_scan_points_in_odom_and_keeps_objects_with_furniture_flagged_static() -> None:
    ranges = np.full(360, np.inf, dtype=np.float32)
    ranges[180] = 1.0  # the beam at angle 0 (straight ahead of the robot)
    robot = RobotState(x=2.0, y=1.0, yaw=math.pi / 2)
    mug = ObjectState("mug_1", "Mug", (2.0, 2.0, 0.8))
    wall = ObjectState("wall_0", "Wall", (0.0, 0.0, 1.0), static=True)
    world = ShieldWorld().update(scan_observation(robot, ranges, 0.0, [mug, wall]))
    assert world.robot == robot
    assert world.objects == (mug, wall)  # as safevla/objects publishes them: statics explain lidar points
    assert world.target_object_id is None
    assert len(world.obstacle_xy) == 1
    assert world.obstacle_xy[0] == pytest.approx((2.0, 2.0), abs=0.05)  # 1 m ahead of a robot facing +y
    assert world.obstacle_visible.tolist() == [True]


def blind_scan() -> np.ndarray:
    """Beams around straight ahead return below range_min (e.g. occluded): they clear nothing."""
    blind = np.full(360, np.inf, dtype=np.float32)
    blind[175:186] = 0.01
    return blind


def seen_then_occluded(estimator: ShieldWorld, occluded_at: float) -> WorldEstimate:
    """The estimate at ``occluded_at`` of an obstacle 1 m ahead, seen at time 0 and occluded since."""
    hit = np.full(360, np.inf, dtype=np.float32)
    hit[180] = 1.0
    estimator.update(scan_observation(RobotState(), hit, 0.0, []))
    return estimator.update(scan_observation(RobotState(), blind_scan(), occluded_at, []))


def test_shield_world_remembers_an_obstacle_that_left_the_scan_until_reset() -> None:
    estimator = ShieldWorld()
    assert seen_then_occluded(estimator, 1.0).obstacle_visible.tolist() == [False]
    estimator.reset()
    assert len(estimator.update(scan_observation(RobotState(), blind_scan(), 2.0, [])).obstacle_xy) == 0


def test_an_evaluated_episode_forgets_no_cell_with_age() -> None:
    """Through ROS the sim clock also runs while the nodes think (longer on a loaded machine): a decay would
    make what the shield remembers, and so the results, depend on the load."""
    assert seen_then_occluded(ShieldWorld(), 1e5).obstacle_visible.tolist() == [False]


def test_a_simulated_scan_builds_the_same_obstacles_before_and_after_a_laserscan_message() -> None:
    """The in-process evaluation and the safety monitor (which gets the scan over DDS) remember the same
    cells. With float64 scan angles the rounding on the wire (-pi by 9e-8 rad) moved hits into other cells:
    here 257 cells in-process against 243 in the monitor."""
    from safevla_node.nodes import conversions as conv
    from sim_bridge.homegen import HomeGenConfig
    from sim_bridge.interface import TaskKind
    from sim_bridge.mujoco import MujocoBackend
    from tests.nodes.test_conversions import over_the_wire

    sim = MujocoBackend(home_config=HomeGenConfig.easy(), depth=False)
    try:
        observation = sim.reset(0, TaskKind.PICKUP)
    finally:
        sim.close()
    msg = over_the_wire(conv.scan_to_msg(observation.scan, conv.seconds_to_time(observation.time), "base_link"))
    received = dataclasses.replace(observation, scan=conv.scan_from_msg(msg, "base_link"))
    in_process, monitor = ShieldWorld().update(observation), ShieldWorld().update(received)
    assert len(in_process.obstacle_xy) > 100  # walls seen
    np.testing.assert_array_equal(monitor.obstacle_xy, in_process.obstacle_xy)
