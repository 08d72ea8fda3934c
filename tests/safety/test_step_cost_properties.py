"""Properties of the step cost that hold for any episode, in both modes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safevla_node.safety import (
    COST_CATEGORIES,
    CollisionEvent,
    CostMode,
    ObjectState,
    RobotState,
    StepCost,
    StepCostConfig,
    StepCostEvaluator,
    WorldSnapshot,
)

MODES = pytest.mark.parametrize("mode", list(CostMode))
FEW = settings(max_examples=20, deadline=None)
TYPES = ("Cup", "Knife", "Bowl", "Vase", "Plate", "Wall", "Drawer", "Sword")
WARMUP = StepCostConfig().warmup_steps

coordinate = st.floats(-2.0, 2.0, allow_nan=False)
height = st.floats(0.0, 1.5, allow_nan=False)
angle = st.floats(0.0, 360.0, allow_nan=False, exclude_max=True)


@st.composite
def objects(draw: st.DrawFn, min_size: int = 1) -> list[ObjectState]:
    """A few objects of assorted types, some static, some held, scattered around the robot."""
    count = draw(st.integers(min_size, 6))
    return [
        ObjectState(
            object_id=f"{kind}_{i}",
            name=f"{kind}_{i}",
            object_type=kind,
            position=(draw(coordinate), draw(coordinate), draw(height)),
            rotation_deg=(0.0, 0.0, draw(angle)),
            visible=draw(st.booleans()),
            held=draw(st.booleans()) and kind != "Wall",
            static=kind == "Wall" or draw(st.booleans()),
        )
        for i, kind in enumerate(draw(st.lists(st.sampled_from(TYPES), min_size=count, max_size=count)))
    ]


#: One object's change during an action: which object, how far it shifts along x, its new yaw, held or not.
shift = st.sampled_from((0.0, 0.03, 0.2, -0.5))
change = st.tuples(st.integers(0, 5), shift, st.none() | angle, st.booleans())


@st.composite
def episodes(draw: st.DrawFn) -> list[WorldSnapshot]:
    """A random episode: objects jump, turn and get picked up; the robot wanders, collides, looks around."""
    things = {o.object_id: o for o in draw(objects())}
    keys = list(things)
    reachable = np.array(draw(st.lists(st.tuples(coordinate, coordinate), max_size=8))).reshape(-1, 2)
    frames = []
    for _ in range(draw(st.integers(1, 9))):
        for index, dx, yaw, held in draw(st.lists(change, max_size=3)):
            o = things[keys[index % len(keys)]]
            things[o.object_id] = dataclasses.replace(
                o,
                position=(o.position[0] + dx, *o.position[1:]),
                rotation_deg=(0.0, 0.0, o.rotation_deg[2] if yaw is None else yaw),
                held=held and o.object_type != "Wall",
            )
        hit = draw(st.none() | st.sampled_from(keys))
        collision = None
        if hit is not None:  # named by id, or only in an AI2-THOR message
            message = f"Collided with static sim object: '{hit}', could not reach target."
            collision = CollisionEvent(draw(st.sampled_from((hit, None))), message)
        frames.append(
            WorldSnapshot.of(
                0.0,
                RobotState(x=draw(coordinate), y=draw(coordinate)),
                things.values(),
                collision=collision,
                seen_ids=frozenset(draw(st.lists(st.sampled_from(keys), max_size=3))),
                reachable_xy=reachable,
            )
        )
    return frames


def run(mode: CostMode, frames: list[WorldSnapshot]) -> tuple[list[StepCost], StepCost]:
    evaluator = StepCostEvaluator(StepCostConfig(mode=mode))
    evaluator.reset(frames[0])
    return [evaluator.step(f) for f in frames[1:]], evaluator.cumulative


@MODES
@FEW
@given(frames=episodes())
def test_every_category_costs_zero_or_one_per_step(mode, frames):
    costs, cumulative = run(mode, frames)
    for cost in costs:
        values = [getattr(cost, c.value) for c in COST_CATEGORIES]
        assert set(values) <= {0, 1}
        assert cost.total == sum(values)
    for category in COST_CATEGORIES:
        assert 0 <= getattr(cumulative, category.value) <= sum(getattr(c, category.value) for c in costs)


@MODES
@FEW
@given(things=objects(), data=st.data())
def test_an_episode_where_nothing_moves_or_collides_costs_nothing(mode, things, data):
    start = WorldSnapshot.of(0.0, RobotState(x=0.3, y=-0.2), things, reachable_xy=np.zeros((1, 2)))
    views = st.frozensets(st.sampled_from([o.object_id for o in things]))
    frames = [start] + [
        dataclasses.replace(start, seen_ids=data.draw(views)) for _ in range(data.draw(st.integers(1, 10)))
    ]
    costs, cumulative = run(mode, frames)
    assert all(c.total == 0 for c in costs)
    assert cumulative.total == 0


@MODES
@FEW
@given(
    others=objects(min_size=0),
    kind=st.sampled_from(TYPES),
    origin=st.tuples(st.floats(-0.6, 0.6), st.floats(-0.6, 0.6), st.floats(0.0, 1.2)),
    direction=st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).filter(
        lambda v: math.hypot(*v) > 0.1
    ),
    near=st.floats(0.0, 1.0),
    more=st.floats(0.0, 1.0),
)
def test_moving_an_object_farther_never_lowers_its_critical_cost(
    mode, others, kind, origin, direction, near, more
):
    target = ObjectState(object_id="Target", name="Target", object_type=kind, position=origin)

    def critical(distance: float) -> int:
        scale = distance / math.hypot(*direction)
        shifted = tuple(p + scale * d for p, d in zip(origin, direction))
        first = WorldSnapshot.of(0.0, RobotState(), [*others, target])
        after = WorldSnapshot.of(0.0, RobotState(), [*others, dataclasses.replace(target, position=shifted)])
        frames = [first] * (WARMUP + 1) + [after, after]
        return sum(c.critical for c in run(mode, frames)[0])

    assert critical(near + more) >= critical(near)


@MODES
@FEW
@given(frames=episodes(), data=st.data())
def test_the_order_of_objects_does_not_change_the_cost(mode, frames, data):
    def shuffle(frame: WorldSnapshot) -> WorldSnapshot:
        items = data.draw(st.permutations(list(frame.objects.items())))
        return dataclasses.replace(frame, objects=dict(items))

    shuffled = [shuffle(f) for f in frames]
    assert run(mode, shuffled) == run(mode, frames)
