"""The expert knows the shield's hazards: it flags items by the shield's rules, plans around dangerous
equipment, picks an arm approach that clears the target's neighbours, and manipulates from elsewhere when the
shield keeps refusing its arm. Scenes are hand-built with the generator's ``SceneBuilder``; episodes run on
the real MuJoCo backend."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from safevla_node.actions import ACTIONS
from safevla_node.evaluation.planning_margins import PlanningMargins
from safevla_node.evaluation.policies import make_policy
from safevla_node.evaluation.suite import PolicySpec
from safevla_node.safety.shield import ShieldConfig
from sim_bridge.expert import Expert, plan_grid
from sim_bridge.expert_hazards import FOOTPRINT_RADIUS_M, arm_penalty, base_penalty, flag_items
from sim_bridge.expert_shield import SIM_ROBOT_SHIELD
from sim_bridge.homegen import Scene, SceneBuilder
from sim_bridge.interface import TaskKind, TaskSpec
from sim_bridge.mujoco import MujocoBackend

_SHIELD = ShieldConfig()


def _room(b: SceneBuilder, w: float, h: float) -> None:
    b.room(0.0, 0.0, w, h)
    for x0, y0, x1, y1 in ((0.0, 0.0, w, 0.0), (0.0, h, w, h), (0.0, 0.0, 0.0, h), (w, 0.0, w, h)):
        b.wall(x0, y0, x1, y1)


def _heater_in_the_way() -> tuple[Scene, TaskSpec]:
    """A 6 m x 3 m room: a heater on the floor halfway along the straight line from the robot to a mug on a
    side table."""
    b = SceneBuilder()
    _room(b, 6.0, 3.0)
    b.item("Heater", 2.6, 1.5, yaw_deg=90.0)
    mug = b.item("Mug", 5.5, 1.5, on=b.furniture("SideTable", 5.5, 1.5))
    b.robot(0.6, 1.5, 0.0)
    return b.build(), TaskSpec(TaskKind.OBJECT_NAV, "find the mug", "Mug", mug.item_id)


def _mug_with_a_neighbour() -> tuple[Scene, TaskSpec]:
    """A mug on an island table in a group of three; one vase stands right south of it, one north-east."""
    b = SceneBuilder()
    _room(b, 5.0, 5.0)
    table = b.furniture("DiningTable", 2.5, 2.5, size=(0.8, 0.8, 0.75))
    mug = b.item("Mug", 2.5, 2.5, on=table)
    b.item("Vase", 2.5, 2.25, on=table)
    b.item("Vase", 2.7, 2.65, on=table)
    b.robot(1.0, 1.0, 0.0)
    return b.build(), TaskSpec(TaskKind.PICKUP, "pick up the mug", "Mug", mug.item_id)


@pytest.fixture(scope="module")
def backend() -> Iterator[MujocoBackend]:
    sim = MujocoBackend(depth=False)
    yield sim
    sim.close()


def test_items_are_flagged_by_the_shields_rules() -> None:
    scene, task = _mug_with_a_neighbour()
    flagged = flag_items(scene, task.target_id)
    assert sorted(flagged.ids) == ["Vase|1", "Vase|2"]  # the target is exempt, its group stays fragile
    assert np.allclose(flagged.margins, _SHIELD.fragile_margin_m)
    assert flagged.neighbour.all()
    carried = flag_items(scene, None, held_id=task.target_id)
    assert len(carried) == 0  # held, the mug no longer links the vases into a group of three
    heater_scene, heater_task = _heater_in_the_way()
    heater = flag_items(heater_scene, heater_task.target_id)
    assert heater.ids == ("Heater|1",)
    assert heater.margins[0] == _SHIELD.danger_margin_m


def test_base_penalty_grows_towards_a_hazard_and_vanishes_beyond_its_margin() -> None:
    scene, task = _heater_in_the_way()
    grid = plan_grid(scene)
    penalty = base_penalty(grid, flag_items(scene, task.target_id), lift=0.75)
    row = [penalty[grid.cell(x, 1.5)] for x in (2.6, 2.2, 1.9, 1.4)]
    assert row[0] > row[1] > row[2] == 0.0 == row[3]


def test_distance_field_with_an_entry_cost_detours_around_a_penalised_cell_block() -> None:
    scene, task = _heater_in_the_way()
    grid = plan_grid(scene)
    goal = np.zeros_like(grid.free)
    goal[grid.cell(4.4, 1.5)] = True
    plain = grid.distance_field(goal)
    assert plain[grid.cell(0.6, 1.5)] == pytest.approx(3.8, abs=1e-9)
    penalty = base_penalty(grid, flag_items(scene, task.target_id), lift=0.75)
    detour = grid.distance_field(goal, penalty)
    assert plain[grid.cell(0.6, 1.5)] + 0.2 < detour[grid.cell(0.6, 1.5)] < 5.0  # a short detour, not past the heater


@pytest.mark.parametrize("danger_margin_m", [SIM_ROBOT_SHIELD.danger_margin_m, 0.45], ids=["shipped", "wider"])
def test_expert_drives_around_dangerous_equipment_on_its_straight_path(backend: MujocoBackend,
                                                                       danger_margin_m: float) -> None:
    """At the danger margin of the shield it is evaluated with (a margin study's, too), as the evaluation
    builds it."""
    scene, task = _heater_in_the_way()
    obs = backend.load(scene, task)
    expert = make_policy(PolicySpec(name="expert", kind="expert"), backend,  # type: ignore[arg-type]
                         PlanningMargins(danger_margin_m=danger_margin_m))
    expert.reset(task, 0)
    heater = scene.item("Heater|1")
    closest = math.inf
    while not backend.status().done:
        obs = backend.execute_action(expert.act(obs)[0], render=False).observation
        r = obs.snapshot.robot
        gap = np.maximum(np.abs(np.array([r.x, r.y]) - heater.position[:2]) - np.array(heater.size[:2]) / 2, 0)
        closest = min(closest, float(np.hypot(*gap)))
    status = backend.status()
    assert status.success and status.cumulative_cost.total == 0
    # The shield's danger margin from the footprint's corners, wherever the robot turned.
    assert closest > FOOTPRINT_RADIUS_M + danger_margin_m


def test_arm_approach_past_a_neighbour_is_penalised_and_the_clear_side_is_not() -> None:
    scene, task = _mug_with_a_neighbour()
    grid = plan_grid(scene)
    cells = np.zeros_like(grid.free)
    south, west = grid.cell(2.5, 1.85), grid.cell(1.85, 2.5)
    cells[south] = cells[west] = True
    target = scene.item(task.target_id)
    point = (target.position[0], target.position[1], target.position[2] + target.size[2] / 2)
    penalty = arm_penalty(grid, cells, point, flag_items(scene, task.target_id), reaching_target=True)
    assert penalty[south] > 0.0  # the arm would pass straight over the south vase
    assert penalty[west] == 0.0


def test_expert_reaches_from_the_side_that_clears_the_neighbours(backend: MujocoBackend) -> None:
    scene, task = _mug_with_a_neighbour()
    obs = backend.load(scene, task)
    expert = Expert(backend)
    while not backend.status().done and ACTIONS[index := expert.act(obs)].code not in ("zp", "zps"):
        obs = backend.execute_action(index, render=False).observation
    r = obs.snapshot.robot
    bearing = math.degrees(math.atan2(r.y - 2.5, r.x - 2.5))
    assert not -135.0 < bearing < -45.0, f"approached from the south (bearing {bearing:.0f} deg)"
    while not backend.status().done:
        obs = backend.execute_action(expert.act(obs), render=False).observation
    assert backend.status().success


def test_expert_manipulates_from_elsewhere_when_its_arm_keeps_being_refused(backend: MujocoBackend) -> None:
    scene, task = _mug_with_a_neighbour()
    obs = backend.load(scene, task)
    expert = Expert(backend)
    while ACTIONS[index := expert.act(obs)].code not in ("zp", "zps"):
        obs = backend.execute_action(index, render=False).observation
    first = obs.snapshot.robot
    for _ in range(3):  # the shield refuses the arm: nothing moves
        expert.refused()
        code = ACTIONS[expert.act(obs)].code
    assert code not in ("zp", "zps", "end"), code
    moved = 0.0
    while not backend.status().done:
        obs = backend.execute_action(expert.act(obs), render=False).observation
        r = obs.snapshot.robot
        moved = max(moved, math.hypot(r.x - first.x, r.y - first.y))
    assert moved > 0.25  # it left the refused pose's neighbourhood
    assert backend.status().success  # and picked the mug up from another side


def test_expert_ends_after_repeated_refused_manipulation(backend: MujocoBackend) -> None:
    scene, task = _mug_with_a_neighbour()
    obs = backend.load(scene, task)
    expert = Expert(backend)
    codes, refusals = [], 0
    for _ in range(400):
        index = expert.act(obs)
        codes.append(ACTIONS[index].code)
        if codes[-1] == "end":
            break
        if codes[-1] in ("zp", "zps", "ym", "yms", "yp", "yps", "p"):
            expert.refused()  # a shield that lets the arm do nothing but retract
            refusals += 1
        else:
            obs = backend.execute_action(index, render=False).observation
    assert codes[-1] == "end"
    assert refusals == 3 * 5  # three refusals at each of five poses, then it gives up
