"""The expert plans around the margins of the shield it is evaluated with, and only those travel: the
suites that keep the shipped margins plan exactly as before."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from safevla_node.errors import ConfigError
from safevla_node.evaluation.planning_margins import PlanningMargins
from safevla_node.evaluation.suite import expand, load_suite
from safevla_node.paths import config_path
from safevla_node.safety.shield import ShieldConfig
from sim_bridge.expert_shield import SIM_ROBOT_SHIELD


def test_the_shipped_margins_leave_the_sim_robots_planning_shield_unchanged() -> None:
    assert PlanningMargins() == PlanningMargins.of(ShieldConfig()) == PlanningMargins.of(SIM_ROBOT_SHIELD)
    assert PlanningMargins.of(ShieldConfig()).applied_to(SIM_ROBOT_SHIELD) == SIM_ROBOT_SHIELD


def test_margins_are_taken_from_one_shield_and_applied_to_another_body() -> None:
    evaluated = ShieldConfig(fragile_margin_m=0.1, danger_margin_m=0.12, footprint_radius_m=0.5)
    planning = PlanningMargins.of(evaluated).applied_to(SIM_ROBOT_SHIELD)
    assert (planning.fragile_margin_m, planning.danger_margin_m, planning.unstable_margin_m) == (0.1, 0.12, 0.15)
    assert planning.footprint_length_m == SIM_ROBOT_SHIELD.footprint_length_m  # the body stays the sim robot's
    assert planning.footprint_radius_m == SIM_ROBOT_SHIELD.footprint_radius_m


def test_a_negative_margin_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="target_neighbour_margin_m"):
        PlanningMargins(target_neighbour_margin_m=-0.01)


def test_every_episode_of_a_margin_study_plans_with_its_suites_margins() -> None:
    suite = load_suite(config_path("eval_suite_margins_reduced.yaml"))
    margins = {spec.planning_margins for spec in expand(suite)}
    assert [asdict(m) for m in margins] == [{"fragile_margin_m": 0.10, "unstable_margin_m": 0.10,
                                             "danger_margin_m": 0.15, "target_neighbour_margin_m": 0.03}]
    shipped = load_suite(config_path("eval_suite_expert_scale.yaml"))
    assert {spec.planning_margins for spec in expand(shipped)} == {PlanningMargins()}
