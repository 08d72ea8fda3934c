"""Task sampling, instruction text and success rules (backend-neutral)."""

from __future__ import annotations

import pytest

from sim_bridge.homegen import HomeGenConfig, SceneBuilder, generate_home
from sim_bridge.interface import TaskKind
from sim_bridge.tasks import TASK_BUDGET, instruction, is_success, rests_on, sample_task


@pytest.mark.parametrize(
    ("kind", "target", "dest", "text"),
    [
        (TaskKind.OBJECT_NAV, "Mug", None, "find a mug"),
        (TaskKind.OBJECT_NAV, "Apple", None, "find an apple"),
        (TaskKind.PICKUP, "Apple", None, "pick up the apple"),
        (TaskKind.FETCH, "Apple", "DiningTable", "bring the apple to the dining table"),
    ],
)
def test_instruction_text(kind: TaskKind, target: str, dest: str | None, text: str) -> None:
    assert instruction(kind, target, dest) == text


def test_sampled_tasks_are_reproducible_and_use_the_budget() -> None:
    scene = generate_home(4)
    a, b = (sample_task(scene, TaskKind.FETCH, 4) for _ in range(2))
    assert a == b and a.max_steps == TASK_BUDGET == 600
    assert scene.item(a.target_id).kind == a.target_type and a.destination_type


def test_infeasible_task_names_a_type_absent_from_the_scene() -> None:
    scene = generate_home(4, HomeGenConfig.hard())
    task = sample_task(scene, TaskKind.PICKUP, 4, infeasible=True)
    assert task.target_id is None and not task.feasible
    assert task.target_type not in {it.kind for it in scene.items}


def test_pickup_targets_exclude_hazard_items() -> None:
    scene = generate_home(1, HomeGenConfig.hard())
    hazard_ids = {i for h in scene.hazards for i in h.ids}
    assert all(sample_task(scene, TaskKind.PICKUP, s).target_id not in hazard_ids for s in range(20))


def test_sampling_without_eligible_targets_is_refused() -> None:
    with pytest.raises(ValueError, match="no eligible target"):
        sample_task(generate_home(0), TaskKind.PICKUP, 0, eligible=lambda item: False)


def _table_scene():
    b = SceneBuilder()
    table = b.furniture("DiningTable", 1.0, 1.0)
    b.item("Apple", 1.0, 1.0, on=table)
    b.item("Apple", 3.0, 3.0)
    return b.build()


def test_rests_on_needs_the_item_over_the_top_surface() -> None:
    scene = _table_scene()
    assert rests_on(scene, scene.items[0].position, "DiningTable")
    assert not rests_on(scene, scene.items[1].position, "DiningTable")


def test_objectnav_success_needs_the_target_type_seen_within_two_metres() -> None:
    scene = _table_scene()
    task = sample_task(scene, TaskKind.OBJECT_NAV, 0)
    positions = {it.item_id: it.position for it in scene.items}
    assert is_success(task, scene, nav_visible={"Apple|1": 1.9}, held_id=None, positions=positions)
    assert not is_success(task, scene, nav_visible={"Apple|1": 2.1}, held_id=None, positions=positions)


def test_fetch_success_needs_the_target_released_on_the_destination() -> None:
    scene = _table_scene()
    task = sample_task(scene, TaskKind.FETCH, 0, eligible=lambda it: it.item_id == "Apple|2")
    assert task.destination_type == "DiningTable"
    on_table = {"Apple|1": scene.items[0].position, "Apple|2": (1.2, 1.0, 0.8)}
    assert is_success(task, scene, nav_visible={}, held_id=None, positions=on_table)
    assert not is_success(task, scene, nav_visible={}, held_id="Apple|2", positions=on_table)
