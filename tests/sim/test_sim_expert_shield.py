"""The expert asks the shield itself (``ShieldProbe``: the real ``Shield`` on a world built from the scene) which
goal cells let its manipulation run, and heads only for those when there are any."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from safevla_node.safety.types import RobotState
from sim_bridge.expert import Expert
from sim_bridge.expert_shield import SIM_ROBOT_SHIELD, ShieldProbe
from sim_bridge.homegen import HomeGenConfig
from sim_bridge.interface import TaskKind
from sim_bridge.mujoco import MujocoBackend
from sim_bridge.mujoco import stretch_constants as C
from tests.sim.test_sim_expert_hazards import _mug_with_a_neighbour


@pytest.fixture(scope="module")
def backend() -> Iterator[MujocoBackend]:
    sim = MujocoBackend(home_config=HomeGenConfig(), depth=False)
    yield sim
    sim.close()


def test_probe_shield_describes_the_simulated_robot() -> None:
    assert SIM_ROBOT_SHIELD.footprint_length_m == pytest.approx(2 * C.BASE_HALF[0])
    assert SIM_ROBOT_SHIELD.mast_xy_m == C.MAST_XY
    assert SIM_ROBOT_SHIELD.lift_offset_m == C.LIFT_ZERO_Z


def test_probe_refuses_extending_the_arm_over_a_fragile_neighbour_and_allows_the_clear_side() -> None:
    scene, task = _mug_with_a_neighbour()  # mug at (2.5, 2.5), a vase right south of it at (2.5, 2.25)
    probe = ShieldProbe(scene, task.target_id, (2.5, 2.5))
    # The arm extends to the robot's right (-y in its frame): from the south (facing west) it reaches north
    # straight over the vase; from the west (facing north) it reaches east with nothing in between.
    south = RobotState(x=2.5 + C.MAST_XY[0], y=1.9, yaw=np.pi, lift=0.75, arm_extension=0.1)
    west = RobotState(x=1.9, y=2.5 - C.MAST_XY[0], yaw=np.pi / 2, lift=0.75, arm_extension=0.1)
    assert not probe.allows(south, "zp")
    assert probe.allows(west, "zp")


def test_probe_refuses_turning_into_a_wall() -> None:
    scene, task = _mug_with_a_neighbour()  # 5 m x 5 m room, walls at x = 0
    probe = ShieldProbe(scene, task.target_id, (0.5, 2.5))
    assert not probe.allows(RobotState(x=0.25, y=2.5, yaw=0.0, lift=0.75), "l")
    assert probe.allows(RobotState(x=0.6, y=2.5, yaw=0.0, lift=0.75), "l")


def test_expert_heads_only_for_goal_cells_the_shield_lets_it_manipulate_from(
    backend: MujocoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Medium home, seed 208: the target stands in a fragile group; of the reach band's cheapest cells by the
    expert's geometric hazard cost, some put the arm too close to a neighbour for the shield."""
    backend.reset(208, TaskKind.PICKUP)
    expert = Expert(backend)
    item = backend.scene.item(backend.task.target_id)
    point = (item.position[0], item.position[1], item.position[2] + item.size[2] / 2)
    probe = ShieldProbe(backend.scene, backend.task.target_id, point[:2])

    def judged(cells: np.ndarray) -> list[bool]:
        lift = C.STOW["joint_lift"]
        return [expert._manipulation_allowed(probe, x, y, point, lift) for x, y in expert.grid.points(cells)]

    assert expert.goal_cells.any() and all(judged(expert.goal_cells))
    monkeypatch.setattr(Expert, "_judged_goals", lambda self, cells, *args: np.zeros_like(cells))
    cost_only = Expert(backend).goal_cells
    assert not all(judged(cost_only))


def test_the_sim_robot_profile_describes_the_same_body_as_the_sim_constants() -> None:
    # config/robots/mujoco_sim.yaml (the sim profile's monitor and the suites' shield) is written by hand;
    # the probe's config is derived from the MuJoCo model's constants: they must agree.
    from safevla_node.config import from_mapping, to_mapping
    from safevla_node.evaluation.suite import robot_shield_section
    from safevla_node.safety.shield import ShieldConfig

    profile = to_mapping(from_mapping(ShieldConfig, robot_shield_section("robots/mujoco_sim.yaml")))
    derived = to_mapping(SIM_ROBOT_SHIELD)
    for name, value in derived.items():
        assert profile[name] == pytest.approx(value, abs=0.005), name


def test_aims_start_at_the_centre_and_stay_over_the_item_turning_with_it() -> None:
    from sim_bridge.expert import _aim_offsets, _Box

    box = _Box(position=(1.0, 2.0, 0.8), size=(0.2, 0.08, 0.1), yaw_deg=0.0)
    offsets = np.array(_aim_offsets(box))
    assert len(offsets) == 9 and tuple(offsets[0]) == (0.0, 0.0)
    # Halfway to the sides and corners: the grasp point stays over the item, where its fingers close round it.
    assert np.abs(offsets[:, 0]).max() == pytest.approx(0.05) and np.abs(offsets[:, 1]).max() == pytest.approx(0.02)
    turned = np.array(_aim_offsets(box._replace(yaw_deg=90.0)))
    np.testing.assert_allclose(turned, np.stack([-offsets[:, 1], offsets[:, 0]], axis=1), atol=1e-12)


def test_grasp_gap_measures_from_the_grasp_point_to_the_items_turned_box() -> None:
    from sim_bridge.expert import GRASP_X, GRASP_Y0, GRASP_Z0, _Box, _grasp_gap

    robot = RobotState(x=0.0, y=0.0, yaw=0.0, lift=0.5, arm_extension=0.2)
    grasp = (GRASP_X, -(GRASP_Y0 + 0.2), 0.5 + GRASP_Z0)
    # A 0.2 x 0.1 box whose near long side is 0.03 m beyond the grasp point along x, its top level with it.
    box = _Box(position=(grasp[0] + 0.13, grasp[1], grasp[2] - 0.05), size=(0.2, 0.1, 0.1), yaw_deg=0.0)
    assert _grasp_gap(box, robot) == pytest.approx(0.03)
    # Turned by 90 degrees, its short side (0.05 m from its centre) faces the grasp point: 0.08 m away.
    assert _grasp_gap(box._replace(yaw_deg=90.0), robot) == pytest.approx(0.08)
