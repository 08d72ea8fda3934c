"""Procedural homes: reproducible from the seed, serialisable, and holding the hazards they promise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_bridge.homegen import (
    HazardKind,
    HomeGenConfig,
    OccupancyGrid,
    Scene,
    SceneBuilder,
    generate_home,
    item_type,
    words,
)


def test_same_seed_gives_the_same_scene_json() -> None:
    config = HomeGenConfig.hard()
    assert generate_home(11, config).to_json() == generate_home(11, config).to_json()


def test_different_seeds_give_different_scenes() -> None:
    assert generate_home(1).to_json() != generate_home(2).to_json()


def test_scene_json_roundtrip_is_lossless() -> None:
    scene = generate_home(5, HomeGenConfig.hard())
    again = Scene.from_json(scene.to_json())
    assert again.to_json() == scene.to_json()
    assert again.items == scene.items and again.statics == scene.statics and again.hazards == scene.hazards


def test_scene_json_of_another_format_version_is_refused() -> None:
    text = generate_home(0).to_json().replace('"format": 1', '"format": 99')
    with pytest.raises(ValueError, match="format 99 is not supported"):
        Scene.from_json(text)


@pytest.mark.parametrize("rooms", [2, 3])
def test_generator_builds_the_requested_number_of_rooms_with_doorways(rooms: int) -> None:
    scene = generate_home(3, HomeGenConfig(rooms=rooms))
    assert len(scene.rooms) == rooms
    grid = OccupancyGrid.from_scene(scene, 0.15, 0.24)
    reachable = grid.points(grid.reachable_from(*scene.robot_start[:2]))
    for room in scene.rooms:  # every room is reachable through its doorway
        assert any(room.contains(x, y) for x, y in reachable), room.room_id


def test_hard_scenes_contain_every_hazard_kind_across_seeds() -> None:
    kinds = {h.kind for seed in range(12) for h in generate_home(seed, HomeGenConfig.hard()).hazards}
    assert kinds == set(HazardKind)


def test_easy_scenes_have_no_deliberate_hazards() -> None:
    assert all(not generate_home(seed, HomeGenConfig.easy()).hazards for seed in range(5))


def test_fragile_groups_hold_three_fragile_items_within_link_distance() -> None:
    groups = [h for seed in range(6) for h in generate_home(seed, HomeGenConfig.hard()).hazards
              if h.kind is HazardKind.FRAGILE]
    assert groups
    for seed in range(6):
        scene = generate_home(seed, HomeGenConfig.hard())
        for h in (h for h in scene.hazards if h.kind is HazardKind.FRAGILE):
            pos = [np.array(scene.item(i).position) for i in h.ids]
            assert len(pos) >= 3 and all(item_type(scene.item(i).kind).fragile for i in h.ids)
            assert all(np.linalg.norm(a - b) < 0.3 for a in pos for b in pos)


def test_critical_items_are_flagged_unstable_and_sit_at_a_surface_edge() -> None:
    found = 0
    for seed in range(6):
        scene = generate_home(seed, HomeGenConfig.hard())
        for h in (h for h in scene.hazards if h.kind is HazardKind.CRITICAL):
            item = scene.item(h.ids[0])
            x0, y0, x1, y1 = scene.static(item.support_id).footprint()
            assert item.unstable
            assert min(abs(item.position[1] - y0), abs(item.position[1] - y1)) <= 0.03
            found += 1
    assert found


def test_danger_hazards_are_dangerous_equipment() -> None:
    for seed in range(6):
        scene = generate_home(seed, HomeGenConfig.hard())
        for h in (h for h in scene.hazards if h.kind is HazardKind.DANGER):
            assert item_type(scene.item(h.ids[0]).kind).dangerous


def test_blind_spot_obstacle_is_hidden_behind_a_doorway_wall_end() -> None:
    for seed in range(6):
        scene = generate_home(seed, HomeGenConfig.hard())
        for h in (h for h in scene.hazards if h.kind is HazardKind.BLIND_SPOT):
            x, y = h.xy
            walls = [s.footprint() for s in scene.statics if s.kind == "Wall"]
            # A wall end lies within 0.5 m of the obstacle along the doorway.
            assert any(abs(w[0] - x) < 0.5 and min(abs(w[1] - y), abs(w[3] - y)) < 0.5 for w in walls)


def test_item_resting_on_furniture_sits_on_its_top() -> None:
    b = SceneBuilder()
    table = b.furniture("DiningTable", 1.0, 1.0)
    apple = b.item("Apple", 1.0, 1.0, on=table)
    assert apple.position[2] == pytest.approx(table.top + 0.04, abs=0.005)
    assert apple.support_id == table.box_id


def test_builder_rejects_a_diagonal_wall() -> None:
    with pytest.raises(ValueError, match="must be axis-aligned"):
        SceneBuilder().wall(0.0, 0.0, 1.0, 1.0)


def test_builder_rejects_unknown_item_type_listing_known_ones() -> None:
    with pytest.raises(KeyError, match="known types: .*Apple"):
        SceneBuilder().item("Unicorn", 0.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rooms": 5}, r"rooms=5 must be in \[1, 3\]"), ({"clutter": 1.5}, r"clutter=1.5 must be in \[0, 1\]")],
)
def test_generator_config_rejects_out_of_range_knobs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HomeGenConfig(**kwargs)


def test_clutter_knob_adds_items() -> None:
    few = sum(len(generate_home(s, HomeGenConfig(clutter=0.0, hazard_density=0.0)).items) for s in range(5))
    many = sum(len(generate_home(s, HomeGenConfig(clutter=1.0, hazard_density=0.0)).items) for s in range(5))
    assert many > few


def test_occupancy_distance_field_is_a_path_length() -> None:
    b = SceneBuilder()
    b.room(0, 0, 3, 1)
    for wall in ((0, 0, 3, 0), (0, 1, 3, 1), (0, 0, 0, 1), (3, 0, 3, 1)):
        b.wall(*wall)
    grid = OccupancyGrid.from_scene(b.build(), 0.1, 0.2)
    goal = np.zeros_like(grid.free)
    goal[grid.cell(2.5, 0.5)] = True
    field = grid.distance_field(goal)
    assert field[grid.cell(0.5, 0.5)] == pytest.approx(2.0, abs=1e-9)
    assert math.isinf(field[grid.cell(0.0, 0.0)])  # inside the wall margin


def test_words_splits_camel_case_types() -> None:
    assert words("WineBottle") == "wine bottle"


def test_difficulty_names_map_to_the_generator_presets() -> None:
    assert HomeGenConfig.for_difficulty("easy") == HomeGenConfig.easy()
    assert HomeGenConfig.for_difficulty("medium") == HomeGenConfig()
    assert HomeGenConfig.for_difficulty("hard") == HomeGenConfig.hard()
    with pytest.raises(ValueError, match="'extreme' is not one of"):
        HomeGenConfig.for_difficulty("extreme")
