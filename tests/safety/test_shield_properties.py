"""Properties of the shield that must hold for every command and every obstacle layout."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from safevla_node.safety.shield import Shield
from safevla_node.safety.types import (
    DiscreteCommand,
    ObjectState,
    RobotState,
    TwistCommand,
    VerdictKind,
    WorldEstimate,
)

SHIELD = Shield()
PROPERTY = settings(max_examples=80, deadline=None)

coordinate = st.floats(-1.5, 1.5, allow_nan=False)
points = st.lists(st.tuples(coordinate, coordinate, st.booleans()), max_size=25)
robots = st.builds(
    RobotState,
    yaw=st.floats(-math.pi, math.pi),
    lift=st.floats(0.0, 1.1),
    arm_extension=st.floats(0.0, 0.52),
    wrist_yaw=st.floats(-1.75, 4.0),
)
twists = st.builds(TwistCommand, st.floats(-0.8, 0.8), st.floats(-1.5, 1.5), st.floats(0.0, 1.0))
any_twist = st.builds(
    TwistCommand,
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
)


def make_world(robot: RobotState, pts: list[tuple[float, float, bool]]) -> WorldEstimate:
    xy = np.array([(x, y) for x, y, _ in pts], dtype=float).reshape(-1, 2)
    visible = np.array([v for _, _, v in pts], dtype=bool)
    return WorldEstimate(robot, xy, visible)


@PROPERTY
@given(robots, points, st.one_of(twists, any_twist))
def test_a_stop_verdict_never_lets_motion_through(robot: RobotState, pts: list, cmd: TwistCommand) -> None:
    out, verdict = SHIELD.safe_twist(make_world(robot, pts), cmd)
    if verdict.kind is VerdictKind.STOP:
        assert (out.linear_x, out.angular_z) == (0.0, 0.0)


@PROPERTY
@given(robots, points, st.one_of(twists, any_twist))
def test_the_shield_never_raises_a_speed_nor_flips_its_sign(
    robot: RobotState, pts: list, cmd: TwistCommand
) -> None:
    out, _ = SHIELD.safe_twist(make_world(robot, pts), cmd)
    for before, after in ((cmd.linear_x, out.linear_x), (cmd.angular_z, out.angular_z)):
        assert math.isfinite(after)
        assert abs(after) <= abs(before) or not math.isfinite(before)
        assert after * before >= 0.0 or not math.isfinite(before)
    assert abs(out.linear_x) <= SHIELD.config.max_linear_mps + 1e-12
    assert abs(out.angular_z) <= SHIELD.config.max_angular_rps + 1e-12


@PROPERTY
@given(robots, points, st.tuples(coordinate, coordinate, st.booleans()), twists)
def test_adding_an_obstacle_point_never_makes_the_verdict_less_strict(
    robot: RobotState, pts: list, extra: tuple[float, float, bool], cmd: TwistCommand
) -> None:
    before = SHIELD.check(make_world(robot, pts), cmd)
    after = SHIELD.check(make_world(robot, [*pts, extra]), cmd)
    assert after.kind >= before.kind
    if before.kind is VerdictKind.LIMIT and after.kind is VerdictKind.LIMIT:
        assert after.scale <= before.scale + 1e-12


@PROPERTY
@given(robots, points, twists, st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_the_order_of_the_points(
    robot: RobotState, pts: list, cmd: TwistCommand, rng: object
) -> None:
    shuffled = list(pts)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    a = SHIELD.check(make_world(robot, pts), cmd)
    b = SHIELD.check(make_world(robot, shuffled), cmd)
    assert (a.kind, a.category) == (b.kind, b.category)
    assert math.isclose(a.scale, b.scale, rel_tol=1e-9, abs_tol=1e-12)


cups = st.lists(st.tuples(coordinate, coordinate, st.floats(0.0, 1.2)), max_size=6)
actions = st.integers(0, 19)


def cup_world(robot: RobotState, pts: list, cup_xyz: list, target: str | None) -> WorldEstimate:
    objects = tuple(
        ObjectState(f"Cup|{i}", "Cup", xyz, size=(0.08, 0.08, 0.1)) for i, xyz in enumerate(cup_xyz)
    )
    world = make_world(robot, pts)
    return WorldEstimate(robot, world.obstacle_xy, world.obstacle_visible, objects, target)


@PROPERTY
@given(robots, points, cups, st.tuples(coordinate, coordinate, st.booleans()), actions)
def test_adding_an_obstacle_point_never_makes_a_discrete_verdict_less_strict_with_a_target(
    robot: RobotState, pts: list, cup_xyz: list, extra: tuple[float, float, bool], action: int
) -> None:
    cmd = DiscreteCommand(action)
    before = SHIELD.check(cup_world(robot, pts, cup_xyz, "Cup|0"), cmd)
    after = SHIELD.check(cup_world(robot, [*pts, extra], cup_xyz, "Cup|0"), cmd)
    assert after.kind >= before.kind


@PROPERTY
@given(robots, points, cups, actions)
def test_naming_a_target_never_makes_a_verdict_stricter(
    robot: RobotState, pts: list, cup_xyz: list, action: int
) -> None:
    cmd = DiscreteCommand(action)
    untargeted = SHIELD.check(cup_world(robot, pts, cup_xyz, None), cmd)
    targeted = SHIELD.check(cup_world(robot, pts, cup_xyz, "Cup|0"), cmd)
    assert targeted.kind <= untargeted.kind
