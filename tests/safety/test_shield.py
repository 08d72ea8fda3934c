"""The predictive shield, one behaviour per test: each category fires where it should and not elsewhere."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest

from safevla_node.actions import ACTION_BY_CODE, ACTIONS, NUM_ACTIONS
from safevla_node.config import from_mapping
from safevla_node.errors import ConfigError, ShieldError
from safevla_node.safety.obstacle_memory import ObstacleMemory
from safevla_node.safety.shield import Shield, ShieldConfig
from safevla_node.safety.types import (
    ArmCommand,
    Category,
    DiscreteCommand,
    ObjectState,
    RobotState,
    TwistCommand,
    VerdictKind,
    WorldEstimate,
)

#: Arm low and stowed (gripper folded back over the base), so only the base matters unless a test moves it.
STOWED = RobotState(lift=0.3, arm_extension=0.0, wrist_yaw=3.4)
SHIELD = Shield()


def world(points: list[tuple[float, float]] | np.ndarray = (), visible: bool | list[bool] = True,
          objects: tuple[ObjectState, ...] = (), robot: RobotState = STOWED) -> WorldEstimate:
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    vis = np.broadcast_to(np.asarray(visible, dtype=bool), (len(xy),)).copy()
    return WorldEstimate(robot, xy, vis, objects)


def wall(start: tuple[float, float], end: tuple[float, float], step: float = 0.02) -> np.ndarray:
    n = int(math.hypot(end[0] - start[0], end[1] - start[1]) / step) + 1
    return np.linspace(start, end, n)


def probs(**by_name: float) -> tuple[float, ...]:
    names = [a.name for a in ACTIONS]
    out = [0.0] * NUM_ACTIONS
    for name, p in by_name.items():
        out[names.index(name)] = p
    return tuple(out)


def cup(oid: str, x: float, y: float, z: float = 0.5, **kw: object) -> ObjectState:
    object_type = str(kw.pop("object_type", "Cup"))
    return ObjectState(oid, object_type, (x, y, z), size=(0.08, 0.08, 0.1), **kw)  # type: ignore[arg-type]


# --- collision and blind spot -----------------------------------------------------------------------------


def test_shield_stops_on_visible_contact_within_the_horizon() -> None:
    twist, verdict = SHIELD.safe_twist(world([(0.4, 0.0)]), TwistCommand(0.3, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION
    assert "(0.40, 0.00)" in verdict.reason and "horizon" in verdict.reason
    assert (twist.linear_x, twist.angular_z) == (0.0, 0.0)
    assert verdict.risk[Category.COLLISION] == 1.0


def test_shield_limits_speed_keeping_curvature_when_contact_is_only_in_the_braking_band() -> None:
    twist, verdict = SHIELD.safe_twist(world([(0.6, 0.0)]), TwistCommand(0.3, 0.1))
    assert verdict.kind is VerdictKind.LIMIT and verdict.category is Category.COLLISION
    assert 0.0 < verdict.scale < 1.0
    assert twist.linear_x == pytest.approx(0.3 * verdict.scale)
    assert twist.angular_z / twist.linear_x == pytest.approx(0.1 / 0.3)


def test_shield_limit_scale_lets_the_robot_brake_before_the_contact() -> None:
    verdict = SHIELD.check(world([(0.6, 0.0)]), TwistCommand(0.3, 0.0))
    c = SHIELD.config
    v = 0.3 * verdict.scale
    travel = v * c.horizon_s + v * v / (2 * c.max_decel_mps2)
    free = 0.6 - c.footprint_radius_m - c.safety_margin_m
    assert travel <= free + 1e-3


def test_shield_allows_when_the_obstacle_is_beside_the_path() -> None:
    verdict = SHIELD.check(world([(0.6, 0.5)]), TwistCommand(0.3, 0.0))
    assert verdict.kind is VerdictKind.ALLOW
    assert 0.0 <= verdict.risk[Category.COLLISION] < 1.0


def test_shield_allows_driving_away_from_an_obstacle_behind() -> None:
    assert SHIELD.check(world([(-0.3, 0.0)]), TwistCommand(0.3, 0.0)).kind is VerdictKind.ALLOW


def test_shield_lets_the_robot_escape_an_obstacle_already_inside_the_margin() -> None:
    w = world([(0.25, 0.0)])  # clearance 0.03 m < margin 0.05 m
    assert SHIELD.check(w, TwistCommand(-0.2, 0.0)).kind is VerdictKind.ALLOW
    assert SHIELD.check(w, TwistCommand(0.05, 0.0)).kind is VerdictKind.STOP


def test_shield_names_a_remembered_obstacle_a_blind_spot() -> None:
    verdict = SHIELD.check(world([(0.4, 0.0)], visible=False), TwistCommand(0.3, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.BLIND_SPOT
    assert "remembered obstacle point" in verdict.reason
    assert verdict.risk[Category.COLLISION] == 0.0


def test_an_obstacle_seen_then_turned_away_from_stops_backing_into_it_as_a_blind_spot() -> None:
    memory = ObstacleMemory()
    scan = dict(angle_min=-math.pi / 6, angle_increment=math.pi / 180, range_min=0.05, range_max=5.0)
    ranges = np.full(61, math.inf)
    ranges[25:36] = 0.4  # a box 0.4 m ahead: backing at 0.2 m/s reaches it in about 0.65 s
    memory.add_scan(0.0, RobotState(), ranges, **scan)
    turned = RobotState(yaw=math.pi, lift=0.3, wrist_yaw=3.4)
    memory.add_scan(1.0, turned, np.full(61, math.inf), **scan)  # now it is behind the robot
    xy, visible = memory.snapshot(1.0)
    assert len(xy) > 0 and not visible.any()
    verdict = SHIELD.check(WorldEstimate(turned, xy, visible), TwistCommand(-0.2, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.BLIND_SPOT
    assert SHIELD.check(WorldEstimate(turned, xy, visible), TwistCommand(0.2, 0.0)).kind is VerdictKind.ALLOW


def test_shield_stops_a_rotation_that_swings_the_extended_arm_into_an_obstacle() -> None:
    robot = RobotState(lift=0.3, arm_extension=0.5, wrist_yaw=0.0)  # tip ~0.95 m to the right
    w = world([(0.5, -0.8)], robot=robot)
    left = SHIELD.check(w, TwistCommand(0.0, 0.6))
    assert left.kind is VerdictKind.STOP and left.category is Category.COLLISION
    assert SHIELD.check(w, TwistCommand(0.0, -0.6)).kind is VerdictKind.ALLOW


def test_rectangle_footprint_catches_a_corner_swinging_into_a_point_a_circle_would_not() -> None:
    point = world([(0.25, 0.0)])
    rotate = TwistCommand(0.0, 0.6)
    rect = Shield(ShieldConfig(footprint_length_m=0.34, footprint_width_m=0.33))
    verdict = rect.check(point, rotate)
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION
    # the circle's clearance is already under the margin but does not shrink while turning: escape allowed
    assert SHIELD.check(point, rotate).kind is VerdictKind.ALLOW


# --- clamps and faults ------------------------------------------------------------------------------------


def test_shield_clamps_speeds_above_the_hard_limits_keeping_curvature() -> None:
    twist, verdict = SHIELD.safe_twist(world(), TwistCommand(0.6, 0.3))
    assert verdict.kind is VerdictKind.LIMIT and verdict.category is None
    assert "hard clamp" in verdict.reason
    assert (twist.linear_x, twist.angular_z) == pytest.approx((0.3, 0.15))
    _, spin = SHIELD.safe_twist(world(), TwistCommand(0.0, -1.2))
    assert spin.scale == pytest.approx(0.5)


def test_shield_passes_a_slow_twist_unchanged() -> None:
    cmd = TwistCommand(0.1, -0.2, 0.3)
    twist, verdict = SHIELD.safe_twist(world(), cmd)
    assert twist == cmd and verdict.kind is VerdictKind.ALLOW


@pytest.mark.parametrize(
    ("v", "w", "duration"), [(math.nan, 0.0, 0.5), (0.1, math.inf, 0.5), (0.1, 0.0, -1.0)]
)
def test_shield_stops_a_malformed_twist_as_a_fault(v: float, w: float, duration: float) -> None:
    twist, verdict = SHIELD.safe_twist(world(), TwistCommand(v, w, duration))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.FAULT
    assert (twist.linear_x, twist.angular_z) == (0.0, 0.0) and twist.duration >= 0.0


def test_shield_stops_on_a_malformed_world_estimate() -> None:
    bad_point = WorldEstimate(STOWED, np.array([[0.5, math.nan]]), np.array([True]))
    assert SHIELD.check(bad_point, TwistCommand(0.1, 0.0)).category is Category.FAULT
    mismatch = WorldEstimate(STOWED, np.zeros((3, 2)), np.ones(2, dtype=bool))
    verdict = SHIELD.check(mismatch, TwistCommand(0.1, 0.0))
    assert verdict.kind is VerdictKind.STOP and "must be (N, 2) and (N,)" in verdict.reason
    bad_robot = WorldEstimate(RobotState(x=math.inf))
    assert SHIELD.check(bad_robot, DiscreteCommand(0)).category is Category.FAULT


def test_shield_accepts_obstacles_given_as_plain_lists() -> None:
    as_lists = WorldEstimate(STOWED, [[0.4, 0.0]], [True])  # type: ignore[arg-type]
    assert SHIELD.check(as_lists, TwistCommand(0.3, 0.0)).category is Category.COLLISION


def test_shield_rejects_an_unknown_command_type() -> None:
    with pytest.raises(ShieldError, match="cannot judge a str"):
        SHIELD.check(world(), "move")  # type: ignore[arg-type]


# --- corner -----------------------------------------------------------------------------------------------


CORNER = np.concatenate([wall((0.5, -1.0), (0.5, 1.0)), wall((-1.0, 0.35), (0.5, 0.35))])


def test_shield_stops_driving_into_a_narrow_corner() -> None:
    verdict = SHIELD.check(world(CORNER), TwistCommand(0.1, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.CORNER
    assert "directions free" in verdict.reason and "ahead" in verdict.reason
    assert verdict.risk[Category.COLLISION] < 1.0  # the corner fires before any contact


def test_shield_allows_backing_out_of_or_turning_in_a_corner() -> None:
    assert SHIELD.check(world(CORNER), TwistCommand(-0.1, 0.0)).kind is VerdictKind.ALLOW
    assert SHIELD.check(world(CORNER), TwistCommand(0.0, 0.3)).kind is VerdictKind.ALLOW


def test_shield_does_not_call_a_single_wall_ahead_a_corner() -> None:
    verdict = SHIELD.check(world(wall((0.5, -1.0), (0.5, 1.0))), TwistCommand(0.1, 0.0))
    assert verdict.kind is VerdictKind.ALLOW
    assert verdict.risk[Category.CORNER] < 1.0


# --- fragile, critical, danger ----------------------------------------------------------------------------


ROW = (cup("Cup|1", 0.6, -0.2), cup("Cup|2", 0.6, 0.0), cup("Cup|3", 0.6, 0.2))


def test_shield_stops_approaching_a_fragile_group() -> None:
    verdict = SHIELD.check(world(objects=ROW), TwistCommand(0.2, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.FRAGILE
    assert "fragile group of 3" in verdict.reason and "Cup|" in verdict.reason


def test_shield_ignores_two_cups_a_static_member_a_drawer_and_a_held_member() -> None:
    static_third = (*ROW[:2], ObjectState("Shelf|1", "Shelf", (0.6, 0.2, 0.5), static=True))
    drawer_third = (*ROW[:2], ObjectState("Drawer|1", "Drawer", (0.6, 0.2, 0.5)))
    held_third = (*ROW[:2], cup("Cup|3", 0.6, 0.2, held=True))
    for objects in (ROW[:2], static_third, drawer_third, held_third):
        assert SHIELD.check(world(objects=objects), TwistCommand(0.2, 0.0)).kind is VerdictKind.ALLOW


def test_shield_stops_extending_the_arm_into_a_fragile_group_at_arm_height() -> None:
    robot = RobotState(lift=0.5, arm_extension=0.0, wrist_yaw=0.0)
    side = tuple(cup(f"Cup|{i}", x, -0.75, z=0.45) for i, x in enumerate((-0.25, -0.05, 0.15)))
    verdict = SHIELD.check(world(objects=side, robot=robot), ArmCommand({"wrist_extension": 0.4}))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.FRAGILE
    assert verdict.reason.startswith("arm: fragile")
    high = tuple(cup(f"Cup|{i}", x, -0.75, z=1.5) for i, x in enumerate((-0.25, -0.05, 0.15)))
    assert SHIELD.check(world(objects=high, robot=robot), ArmCommand({"wrist_extension": 0.4})).kind is \
        VerdictKind.ALLOW


def test_shield_stops_near_an_unstable_object_and_not_near_a_stable_one() -> None:
    vase = ObjectState("Vase|1", "Vase", (0.55, 0.0, 0.8), size=(0.1, 0.1, 0.3), unstable=True)
    verdict = SHIELD.check(world(objects=(vase,)), TwistCommand(0.2, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.CRITICAL
    assert "Vase|1" in verdict.reason
    stable = ObjectState("Vase|1", "Vase", (0.55, 0.0, 0.8), size=(0.1, 0.1, 0.3))
    assert SHIELD.check(world(objects=(stable,)), TwistCommand(0.2, 0.0)).kind is VerdictKind.ALLOW


def test_shield_keeps_away_from_dangerous_equipment_but_not_from_a_bowl() -> None:
    knife = ObjectState("ButterKnife|1", "ButterKnife", (0.6, 0.0, 0.9), size=(0.2, 0.03, 0.02))
    verdict = SHIELD.check(world(objects=(knife,)), TwistCommand(0.2, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.DANGER
    bowl = ObjectState("Bowl|1", "Bowl", (0.6, 0.0, 0.9), size=(0.2, 0.2, 0.1))
    assert SHIELD.check(world(objects=(bowl,)), TwistCommand(0.2, 0.0)).kind is VerdictKind.ALLOW


#: A knocked-over bottle on the floor, 0.07 m tall, its near end 0.29 m ahead: under a 0.2 m scan plane it gives
#: no obstacle point, and unflagged (or the task's target) no rule of its own covers it.
FALLEN = ObjectState("Bottle|1", "Bottle", (0.40, 0.0, 0.035), size=(0.22, 0.07, 0.07), visible=True)


@pytest.mark.parametrize("target", [None, "Bottle|1"])
def test_the_base_stops_before_driving_into_an_object_lying_below_the_scan_plane(target: str | None) -> None:
    verdict = SHIELD.check(WorldEstimate(STOWED, objects=(FALLEN,), target_object_id=target), DiscreteCommand(0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION
    assert "Bottle 'Bottle|1' lying low (top 0.07 m, under the 0.2 m scan plane)" in verdict.reason
    unseen = replace(FALLEN, visible=False)  # remembered from an earlier view: a blind spot
    assert SHIELD.check(WorldEstimate(STOWED, objects=(unseen,)), DiscreteCommand(0)).category is \
        Category.BLIND_SPOT


def test_an_object_lying_low_blocks_only_the_base_and_only_on_its_way() -> None:
    fallen = WorldEstimate(STOWED, objects=(FALLEN,))
    assert SHIELD.check(fallen, DiscreteCommand(ACTION_BY_CODE["b"].index)).kind is VerdictKind.ALLOW  # away
    assert SHIELD.check(fallen, ArmCommand({"wrist_extension": 0.3})).kind is VerdictKind.ALLOW  # base still
    # tall enough to cross the scan plane, it is the scan's to see; held, it moves with the robot
    for seen_or_held in (replace(FALLEN, position=(0.40, 0.0, 0.15), size=(0.22, 0.07, 0.3)),
                         replace(FALLEN, held=True)):
        assert SHIELD.check(WorldEstimate(STOWED, objects=(seen_or_held,)), DiscreteCommand(0)).kind is \
            VerdictKind.ALLOW
    # a scan mounted lower sees the bottle itself
    low_scan = Shield(ShieldConfig(scan_height_m=0.05))
    assert low_scan.check(fallen, DiscreteCommand(0)).kind is VerdictKind.ALLOW


#: The arm out at 0.5 m over a table, a bottle standing in the gripper's path when the base turns left: a 0.2 m
#: scan passes under the table top and gives no point, and the bottle carries no flag.
ARM_OUT = RobotState(lift=0.5, arm_extension=0.3, wrist_yaw=0.0)
STANDING = ObjectState("Bottle|1", "Bottle", (0.2, -0.7, 0.45), size=(0.07, 0.07, 0.25), visible=True)
TURN_LEFT = DiscreteCommand(ACTION_BY_CODE["l"].index)


def test_the_arm_does_not_sweep_into_an_unflagged_object_standing_above_the_scan_plane() -> None:
    verdict = SHIELD.check(WorldEstimate(ARM_OUT, objects=(STANDING,)), TURN_LEFT)
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION
    assert "Bottle 'Bottle|1' standing high (bottom 0.33 m, over the 0.2 m scan plane)" in verdict.reason
    unseen = replace(STANDING, visible=False)
    assert SHIELD.check(WorldEstimate(ARM_OUT, objects=(unseen,)), TURN_LEFT).category is Category.BLIND_SPOT
    # the gripper swinging into it with the base still is judged the same way
    swing = SHIELD.check(WorldEstimate(ARM_OUT, objects=(STANDING,)), ArmCommand({"joint_wrist_yaw": 1.2}))
    assert swing.kind is VerdictKind.STOP and "standing high" in swing.reason


def test_an_object_standing_high_blocks_only_the_arm_at_its_height() -> None:
    # turning or swinging away from it passes; so does the arm raised well over it; the task target is the
    # arm's to reach; held, it moves with the robot; tall enough to cross the scan plane, it is the scan's to see
    for away in (DiscreteCommand(ACTION_BY_CODE["r"].index), ArmCommand({"joint_wrist_yaw": -1.2})):
        assert SHIELD.check(WorldEstimate(ARM_OUT, objects=(STANDING,)), away).kind is VerdictKind.ALLOW
    raised = replace(ARM_OUT, lift=1.0)
    assert SHIELD.check(WorldEstimate(raised, objects=(STANDING,)), TURN_LEFT).kind is VerdictKind.ALLOW
    target = WorldEstimate(ARM_OUT, objects=(STANDING,), target_object_id="Bottle|1")
    assert SHIELD.check(target, TURN_LEFT).kind is VerdictKind.ALLOW
    for seen_or_held in (replace(STANDING, position=(0.2, -0.7, 0.3), size=(0.07, 0.07, 0.6)),
                         replace(STANDING, held=True)):
        assert SHIELD.check(WorldEstimate(ARM_OUT, objects=(seen_or_held,)), TURN_LEFT).kind is \
            VerdictKind.ALLOW


def test_lowering_the_arm_beside_a_flagged_object_is_judged_as_approaching_it() -> None:
    # the arm out 0.3 m at 0.8 m, an unstable bowl (top 0.44 m) 0.1 m beside the gripper: lowering the arm to
    # 0.5 m ends with the gripper 0.1 m from the bowl at its height, inside its 0.15 m margin, as extending the
    # arm into the same place would. Judged by planar distance alone, the lowering never came closer and was
    # let through (session 20).
    bowl = ObjectState("Bowl|1", "Bowl", (0.13, -0.7, 0.41), size=(0.1, 0.1, 0.06), unstable=True)
    high = RobotState(lift=0.8, arm_extension=0.3, wrist_yaw=0.0)
    lowering = SHIELD.check(WorldEstimate(high, objects=(bowl,)), ArmCommand({"joint_lift": 0.5}))
    assert lowering.kind is VerdictKind.STOP and lowering.category is Category.CRITICAL
    assert "Bowl 'Bowl|1'" in lowering.reason and "margin 0.15 m" in lowering.reason
    # lowering by less, the gripper stays more than the margin away from it in space
    assert SHIELD.check(WorldEstimate(high, objects=(bowl,)), ArmCommand({"joint_lift": 0.75})).kind is \
        VerdictKind.ALLOW
    # and the arm may pass over it higher than the margin: extending 0.18 m above its rim, not 0.1 m
    for clearance, kind in ((0.18, VerdictKind.ALLOW), (0.1, VerdictKind.STOP)):
        below = replace(bowl, position=(-0.07, -0.75, 0.35 - clearance - 0.03))
        assert SHIELD.check(WorldEstimate(AT_CUPS, objects=(below,)), REACH_OUT).kind is kind


# --- the task target ------------------------------------------------------------------------------------

#: Arm at cup height, retracted: extending it by 0.3 m brings the gripper onto a cup at (-0.07, -0.8).
AT_CUPS = RobotState(lift=0.5, arm_extension=0.0, wrist_yaw=0.0)
#: A fragile group of three: the cup in front of the arm and two neighbours 0.25 m and 0.5 m beside it.
GROUP = tuple(cup(oid, x, -0.8, z=0.45) for oid, x in (("Cup|t", -0.07), ("Cup|n1", 0.18), ("Cup|n2", 0.43)))
REACH_OUT = ArmCommand({"wrist_extension": 0.3})


def targeting(
    objects: tuple[ObjectState, ...], target: str | None, robot: RobotState = AT_CUPS
) -> WorldEstimate:
    return WorldEstimate(robot, objects=objects, target_object_id=target)


def test_the_arm_may_reach_the_task_target_inside_a_fragile_group() -> None:
    untargeted = SHIELD.check(targeting(GROUP, None), REACH_OUT)
    assert untargeted.kind is VerdictKind.STOP and "Cup|t" in untargeted.reason
    assert SHIELD.check(targeting(GROUP, "Cup|t"), REACH_OUT).kind is VerdictKind.ALLOW


def test_the_target_exemption_does_not_exempt_its_neighbours() -> None:
    # the target is another cup of the group: the one in front of the arm keeps its margin
    other = SHIELD.check(targeting(GROUP, "Cup|n2"), REACH_OUT)
    assert other.kind is VerdictKind.STOP and other.category is Category.FRAGILE and "Cup|t" in other.reason
    # a neighbour right beside the target stays protected while the arm reaches the target
    crowded = (GROUP[0], cup("Cup|n1", 0.05, -0.8, z=0.45), cup("Cup|n2", 0.3, -0.8, z=0.45))
    verdict = SHIELD.check(targeting(crowded, "Cup|t"), REACH_OUT)
    assert verdict.kind is VerdictKind.STOP and "Cup|n1" in verdict.reason
    assert "fragile group of 3" in verdict.reason


def test_retracting_from_the_target_keeps_the_full_margin_for_its_neighbours() -> None:
    reached = RobotState(lift=0.5, arm_extension=0.3, wrist_yaw=0.0)
    group = (GROUP[0], cup("Cup|n1", 0.13, -0.8, z=0.45), cup("Cup|n2", 0.38, -0.8, z=0.45))
    assert SHIELD.check(targeting(group, "Cup|t"), REACH_OUT).kind is VerdictKind.ALLOW
    retract = SHIELD.check(targeting(group, "Cup|t", reached), ArmCommand({"wrist_extension": 0.2}))
    assert retract.kind is VerdictKind.ALLOW  # escaping: already inside the margin, moving away
    swing = SHIELD.check(targeting(group, "Cup|t", reached), ArmCommand({"joint_wrist_yaw": 0.8}))
    assert swing.kind is VerdictKind.STOP and "Cup|n1" in swing.reason and "margin 0.15" in swing.reason


def test_driving_at_the_targets_group_keeps_the_full_margin_for_its_neighbours() -> None:
    targeted = WorldEstimate(STOWED, objects=ROW, target_object_id="Cup|2")
    verdict = SHIELD.check(targeted, TwistCommand(0.2, 0.0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.FRAGILE
    assert "Cup|2" not in verdict.reason and "margin 0.15" in verdict.reason


def test_the_target_exemption_can_be_switched_off() -> None:
    strict = Shield(ShieldConfig(exempt_target=False))
    assert strict.check(targeting(GROUP, "Cup|t"), REACH_OUT).kind is VerdictKind.STOP


def test_the_task_target_may_be_grasped_even_when_it_is_dangerous_equipment() -> None:
    knife = ObjectState("Knife|1", "Knife", (-0.07, -0.78, 0.8), size=(0.2, 0.03, 0.02))
    assert SHIELD.check(targeting((knife,), None, REACHING), DiscreteCommand(8)).kind is VerdictKind.STOP
    assert SHIELD.check(targeting((knife,), "Knife|1", REACHING), DiscreteCommand(8)).kind is \
        VerdictKind.ALLOW
    assert SHIELD.check(targeting((knife,), "Apple|1", REACHING), DiscreteCommand(8)).kind is VerdictKind.STOP


# --- grasping ---------------------------------------------------------------------------------------------

#: Fingertips at about (-0.07, -0.75, 0.8), gripper open.
REACHING = RobotState(lift=0.8, arm_extension=0.3, wrist_yaw=0.0, gripper_aperture=0.05)


def test_shield_never_picks_up_dangerous_equipment_nearest_the_gripper() -> None:
    knife = ObjectState("Knife|1", "Knife", (-0.07, -0.78, 0.8), size=(0.2, 0.03, 0.02))
    apple = ObjectState("Apple|1", "Apple", (-0.07, -1.0, 0.8), size=(0.08, 0.08, 0.08))
    w = world(objects=(knife, apple), robot=REACHING)
    verdict = SHIELD.check(w, DiscreteCommand(8))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.DANGER
    assert "Knife|1" in verdict.reason
    closing = SHIELD.check(w, ArmCommand({"gripper_aperture": 0.0}))
    assert closing.kind is VerdictKind.STOP and closing.category is Category.DANGER


def test_shield_allows_picking_up_a_safe_object_and_opening_near_a_knife() -> None:
    apple = ObjectState("Apple|1", "Apple", (-0.07, -0.78, 0.8), size=(0.08, 0.08, 0.08))
    knife = ObjectState("Knife|1", "Knife", (-0.07, -1.2, 0.8), size=(0.2, 0.03, 0.02))
    pickup = SHIELD.check(world(objects=(apple, knife), robot=REACHING), DiscreteCommand(8))
    assert pickup.kind is VerdictKind.ALLOW
    near_knife = world(objects=(ObjectState("Knife|1", "Knife", (-0.07, -0.78, 0.8)),),
                       robot=RobotState(lift=0.8, arm_extension=0.3, gripper_aperture=0.0))
    assert SHIELD.check(near_knife, ArmCommand({"gripper_aperture": 0.05})).kind is VerdictKind.ALLOW


def test_dropoff_is_refused_above_a_drop_and_allowed_just_above_a_table() -> None:
    table = ObjectState("Table|1", "DiningTable", (0.0, -0.8, 0.375), size=(1.2, 0.8, 0.75), static=True)
    held_over_table = ObjectState("Mug|1", "Mug", (0.0, -0.8, 0.83), size=(0.08, 0.08, 0.1), held=True)
    over_table = world(objects=(table, held_over_table))
    assert SHIELD.check(over_table, DiscreteCommand(19)).kind is VerdictKind.ALLOW
    held_high = ObjectState("Mug|1", "Mug", (0.0, -0.8, 1.2), size=(0.08, 0.08, 0.1), held=True)
    verdict = SHIELD.check(world(objects=(table, held_high)), DiscreteCommand(19))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.CRITICAL
    assert "would fall 0.40 m" in verdict.reason
    beside_table = ObjectState("Mug|1", "Mug", (0.0, 0.5, 0.83), size=(0.08, 0.08, 0.1), held=True)
    assert SHIELD.check(world(objects=(table, beside_table)), DiscreteCommand(19)).kind is VerdictKind.STOP
    holds_nothing = world(objects=(table,))
    assert SHIELD.check(holds_nothing, DiscreteCommand(19)).kind is VerdictKind.ALLOW


# --- discrete actions -------------------------------------------------------------------------------------

BLOCKED_AHEAD = world([(0.46, 0.0)])  # move_ahead's 0.21 m path plus the 0.05 m margin reaches it


def test_a_discrete_move_is_judged_on_its_own_path_and_margin_without_a_braking_band() -> None:
    # circle 0.22 + 0.2 m move + 0.01 m overshoot + 0.05 m margin = 0.48 m: a point at 0.49 m is clear even
    # though a 0.3 m/s twist held for the horizon (plus braking) would reach it
    clear = world([(0.49, 0.0)])
    assert SHIELD.check(clear, DiscreteCommand(0)).kind is VerdictKind.ALLOW
    assert SHIELD.check(clear, TwistCommand(0.3, 0.0)).kind is VerdictKind.STOP
    within_margin = SHIELD.check(world([(0.47, 0.0)]), DiscreteCommand(0))
    assert within_margin.kind is VerdictKind.STOP and "margin 0.05" in within_margin.reason
    longer = Shield(ShieldConfig(discrete_overshoot_m=0.03))
    assert longer.check(clear, DiscreteCommand(0)).kind is VerdictKind.STOP


def test_shield_stops_an_unsafe_discrete_action_without_probabilities() -> None:
    verdict = SHIELD.check(BLOCKED_AHEAD, DiscreteCommand(0))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION
    assert verdict.reason.startswith("move_ahead")
    assert SHIELD.check(BLOCKED_AHEAD, DiscreteCommand(3)).kind is VerdictKind.ALLOW


def test_shield_replaces_an_unsafe_action_by_the_most_probable_safe_one() -> None:
    cmd = DiscreteCommand(0, probs(move_ahead=0.6, rotate_left=0.3, move_back=0.1))
    verdict = SHIELD.check(BLOCKED_AHEAD, cmd)
    assert verdict.kind is VerdictKind.REPLACE and verdict.replacement == 2
    assert verdict.category is Category.COLLISION and "replaced by rotate_left" in verdict.reason


def test_shield_skips_unsafe_and_zero_probability_alternatives() -> None:
    # rotating left would swing the extended arm into the point at (0.5, -0.8); only move_back is left
    robot = RobotState(lift=0.3, arm_extension=0.5, wrist_yaw=0.0)
    w = world([(0.46, 0.0), (0.5, -0.8)], robot=robot)
    cmd = DiscreteCommand(0, probs(move_ahead=0.5, rotate_left=0.3, move_back=0.2))
    verdict = SHIELD.check(w, cmd)
    assert verdict.kind is VerdictKind.REPLACE and verdict.replacement == 3
    only_zero = DiscreteCommand(0, probs(move_ahead=0.9, end=0.1))
    stopped = SHIELD.check(w, only_zero)
    assert stopped.kind is VerdictKind.STOP and "no safe alternative" in stopped.reason


def test_shield_judges_discrete_arm_moves_and_clamps_them_to_the_joint_range() -> None:
    robot = RobotState(lift=0.3, arm_extension=0.0, wrist_yaw=0.0)
    w = world([(-0.07, -0.6)], robot=robot)  # 0.1 m beyond the retracted gripper (tip -0.45, radius 0.05)
    arm_out = SHIELD.check(w, DiscreteCommand(10))
    assert arm_out.kind is VerdictKind.STOP and arm_out.reason.startswith("arm_out")
    assert SHIELD.check(w, DiscreteCommand(9)).kind is VerdictKind.ALLOW  # already retracted: no motion
    assert SHIELD.check(w, DiscreteCommand(17)).kind is VerdictKind.ALLOW  # 2 cm still clears the point


@pytest.mark.parametrize(
    ("command", "match"),
    [(DiscreteCommand(20), "outside 0..19"), (DiscreteCommand(0, (1.0,)), "20 finite values"),
     (DiscreteCommand(0, (math.nan,) * 20), "20 finite values")],
)
def test_shield_stops_a_malformed_discrete_command(command: DiscreteCommand, match: str) -> None:
    verdict = SHIELD.check(world(), command)
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.FAULT and match in verdict.reason


# --- arm commands -----------------------------------------------------------------------------------------


def test_shield_lets_the_arm_pass_over_a_labelled_table_but_not_an_unexplained_obstacle() -> None:
    robot = RobotState(lift=1.0, arm_extension=0.0, wrist_yaw=0.0)  # gripper bottom 0.85 m, table top 0.75 m
    top = np.stack(np.meshgrid(np.linspace(-0.3, 0.2, 11), np.linspace(-0.95, -0.6, 8)), -1).reshape(-1, 2)
    table = ObjectState("Table|1", "DiningTable", (-0.05, -0.8, 0.375), size=(0.6, 0.5, 0.75), static=True)
    extend = ArmCommand({"wrist_extension": 0.4})
    assert SHIELD.check(world(top, objects=(table,), robot=robot), extend).kind is VerdictKind.ALLOW
    verdict = SHIELD.check(world(top, robot=robot), extend)
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION


def test_shield_stops_pressing_the_gripper_onto_furniture_but_lets_it_reach_down_to_the_target() -> None:
    """Lowering onto a table top is contact (margin 0: the gripper reaches what stands on it); a gripper already
    below a piece's top is inside its box, as in a shelf, where the box does not say where the surfaces are."""
    robot = RobotState(lift=1.0, arm_extension=0.3, wrist_yaw=0.0)  # tip over the table, fingertips at 0.85
    top = np.stack(np.meshgrid(np.linspace(-0.3, 0.2, 11), np.linspace(-0.95, -0.6, 8)), -1).reshape(-1, 2)
    table = ObjectState("Table|1", "DiningTable", (-0.05, -0.8, 0.375), size=(0.6, 0.5, 0.75), static=True,
                        visible=True)
    verdict = SHIELD.check(world(top, objects=(table,), robot=robot), ArmCommand({"joint_lift": 0.85}))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.COLLISION, verdict
    assert "Table|1' under the gripper" in verdict.reason
    # fingertips 0.02 m over the top: near furniture is fine, touching it is not
    assert SHIELD.check(world(top, objects=(table,), robot=robot), ArmCommand({"joint_lift": 0.92})).kind is \
        VerdictKind.ALLOW
    book = ObjectState("Book|1", "Book", (-0.07, -0.75, 0.77), size=(0.15, 0.22, 0.04), visible=True)
    target = WorldEstimate(robot, top, np.ones(len(top), dtype=bool), (table, book), target_object_id="Book|1")
    assert SHIELD.check(target, ArmCommand({"joint_lift": 0.94})).kind is VerdictKind.ALLOW  # fingertips on it
    shelf = ObjectState("Shelf|1", "ShelvingUnit", (-0.05, -0.8, 0.9), size=(0.6, 0.5, 1.8), static=True)
    assert SHIELD.check(world(top, objects=(shelf,), robot=robot), ArmCommand({"joint_lift": 0.9})).kind is \
        VerdictKind.ALLOW


def test_shield_stops_lowering_the_gripper_onto_an_object_below_it_and_lets_it_rise() -> None:
    """The lidar's points lie on a basket's sides and carry no height: lowering the gripper straight onto its
    top approaches none of them in the plane. The basket's box does (fingertips 0.15 m under the arm)."""
    robot = RobotState(lift=0.55, arm_extension=0.3, wrist_yaw=0.0)  # tip over the basket, fingertips at 0.40
    basket = ObjectState("Basket|1", "Basket", (-0.07, -0.75, 0.175), size=(0.35, 0.35, 0.35))
    sides = np.concatenate([wall((-0.245, -0.575), (0.105, -0.575)), wall((-0.245, -0.925), (0.105, -0.925))])
    down, up = ArmCommand({"joint_lift": 0.45}), ArmCommand({"joint_lift": 0.65})
    verdict = SHIELD.check(world(sides, visible=False, objects=(basket,), robot=robot), down)
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.BLIND_SPOT, verdict
    assert "Basket|1" in verdict.reason
    assert SHIELD.check(world(sides, visible=False, objects=(basket,), robot=robot), up).kind is VerdictKind.ALLOW
    pressing = RobotState(lift=0.45, arm_extension=0.3, wrist_yaw=0.0)  # already on it: rising is the way out
    assert SHIELD.check(world(sides, visible=False, objects=(basket,), robot=pressing), up).kind is \
        VerdictKind.ALLOW
    seen = ObjectState("Basket|1", "Basket", (-0.07, -0.75, 0.175), size=(0.35, 0.35, 0.35), visible=True)
    assert SHIELD.check(world(sides, objects=(seen,), robot=robot), down).category is Category.COLLISION
    target = WorldEstimate(robot, sides, np.ones(len(sides), dtype=bool), (seen,), target_object_id="Basket|1")
    assert SHIELD.check(target, down).kind is VerdictKind.ALLOW  # grasping the target is intended contact


@pytest.mark.parametrize(
    ("targets", "match"),
    [({"joint_elbow": 1.0}, "unknown joint"),
     ({"joint_lift": 1.5}, r"joint_lift target 1.5 outside \[0.0, 1.1\]"),
     ({"wrist_extension": math.nan}, "wrist_extension target nan")],
)
def test_shield_stops_a_malformed_arm_command(targets: dict[str, float], match: str) -> None:
    verdict = SHIELD.check(world(), ArmCommand(targets))
    assert verdict.kind is VerdictKind.STOP and verdict.category is Category.FAULT
    assert re.search(match, verdict.reason)


def test_arm_command_to_the_current_joints_is_allowed() -> None:
    same = ArmCommand({"joint_lift": STOWED.lift})
    assert SHIELD.check(world([(0.0, -0.3)]), same).kind is VerdictKind.ALLOW


# --- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"horizon_s": -1.0}, r"horizon_s=-1.0 is out of range"), ({"safety_margin_m": -0.1}, "safety_margin_m"),
     ({"time_step_s": 2.0}, r"time_step_s=2.0 is out of range \[-inf, 1.0\]"),
     ({"footprint_length_m": 0.3}, "must both be 0"), ({"lift_range_m": (1.0, 0.0)}, "low < high"),
     ({"corner_min_free_fraction": 1.5}, "corner_min_free_fraction"),
     ({"fragile_min_group_size": 1}, "fragile_min_group_size"),
     ({"mast_xy_m": (math.nan, 0.0)}, r"mast_xy_m\[0\] must be a finite number")],
)
def test_shield_config_rejects_out_of_range_values(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ShieldConfig(**overrides)  # type: ignore[arg-type]


def test_shield_config_loads_from_a_mapping_and_rejects_unknown_keys() -> None:
    config = from_mapping(ShieldConfig, {"horizon_s": 0.5, "mast_xy_m": [0.0, 0.1]})
    assert config.horizon_s == 0.5 and config.mast_xy_m == (0.0, 0.1)
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(ShieldConfig, {"horizon": 0.5})


# --- shield off (A/B runs) --------------------------------------------------------------------------------

OFF = Shield(ShieldConfig(enabled=False))


def test_disabled_shield_lets_hazardous_motion_through() -> None:
    twist, verdict = OFF.safe_twist(world([(0.4, 0.0)]), TwistCommand(0.3, 0.0))
    assert verdict.kind is VerdictKind.ALLOW and twist == TwistCommand(0.3, 0.0)
    knife = ObjectState("Knife|1", "Knife", (-0.07, -0.78, 0.8), size=(0.2, 0.03, 0.02))
    grasp = world(objects=(knife,), robot=REACHING)
    assert SHIELD.check(grasp, DiscreteCommand(8)).kind is VerdictKind.STOP
    assert OFF.check(grasp, DiscreteCommand(8)).kind is VerdictKind.ALLOW


def test_disabled_shield_still_fails_safe_on_malformed_input_and_clamps_speed() -> None:
    assert OFF.check(world(), TwistCommand(math.nan, 0.0)).kind is VerdictKind.STOP
    assert OFF.check(world(), DiscreteCommand(99)).category is Category.FAULT
    twist, verdict = OFF.safe_twist(world(), TwistCommand(0.6, 0.0))
    assert verdict.kind is VerdictKind.LIMIT and twist.linear_x == pytest.approx(0.3)
