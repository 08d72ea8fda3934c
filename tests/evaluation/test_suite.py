"""Suite definitions: YAML validation with readable errors, deterministic expansion, stable keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from safevla_node.config import from_mapping
from safevla_node.errors import ConfigError
from safevla_node.evaluation.policies import resolve_checkpoint
from safevla_node.evaluation.suite import SuiteConfig, expand, load_suite
from sim_bridge.interface import TaskKind

REPO = Path(__file__).resolve().parents[2]


def suite(**overrides: Any) -> SuiteConfig:
    data: dict[str, Any] = {
        "name": "t",
        "policies": [{"name": "expert", "kind": "expert"}, {"name": "noisy", "kind": "noisy_expert", "noise": 0.2}],
        "blocks": [{"name": "main", "tasks": ["objectnav", "pickup"], "seeds": 2}],
    }
    data.update(overrides)
    return from_mapping(SuiteConfig, data)


def test_expansion_is_the_full_product_with_paired_seeds() -> None:
    specs = expand(suite())
    assert len(specs) == 2 * 2 * 2 * 2  # seeds x tasks x policies x shield
    assert {(s.seed, s.task) for s in specs if s.policy.name == "noisy" and s.shield} == {
        (0, TaskKind.OBJECT_NAV), (0, TaskKind.PICKUP), (1, TaskKind.OBJECT_NAV), (1, TaskKind.PICKUP)}
    assert all(s.step_budget == 600 and s.backend == "mujoco" for s in specs)


def test_expansion_is_deterministic_and_keys_are_unique() -> None:
    first, second = expand(suite()), expand(suite())
    assert [s.key for s in first] == [s.key for s in second]
    assert len({s.key for s in first}) == len(first)
    assert first[0].key == "objectnav/medium/none/feasible/expert/shield-off/seed-0"


def test_expansion_is_seed_major_so_a_partial_run_covers_every_cell() -> None:
    seeds = [s.seed for s in expand(suite())]
    assert seeds == sorted(seeds)


def test_infeasible_fraction_turns_the_last_seeds_of_each_cell_infeasible() -> None:
    specs = expand(suite(blocks=[{"name": "b", "tasks": ["fetch"], "seeds": 4, "infeasible_fraction": 0.5,
                                  "policies": ["expert"], "shield": [False]}]))
    assert [(s.seed, s.feasible) for s in specs] == [(0, True), (1, True), (2, False), (3, False)]
    assert specs[2].key == "fetch/medium/none/infeasible/expert/shield-off/seed-2"


def test_an_episode_two_blocks_produce_runs_once() -> None:
    blocks = [
        {"name": "main", "tasks": ["objectnav"], "seeds": 1, "policies": ["expert"], "shield": [False]},
        {"name": "ood", "tasks": ["objectnav"], "seeds": 1, "policies": ["expert"], "shield": [False],
         "perturbations": ["none", "colour"]},
    ]
    assert [s.perturbation for s in expand(suite(blocks=blocks))] == ["none", "colour"]


def test_block_policies_select_from_the_suite_list() -> None:
    specs = expand(suite(blocks=[{"name": "b", "tasks": ["pickup"], "seeds": 1, "policies": ["noisy"]}]))
    assert {s.policy.name for s in specs} == {"noisy"}
    assert specs[0].policy.noise == 0.2


def test_unknown_key_is_rejected_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['blocks\[0\].seed'\]; valid keys: .*'seeds'"):
        suite(blocks=[{"name": "b", "seed": 3}])


def test_unknown_task_is_rejected_listing_the_task_families() -> None:
    with pytest.raises(ConfigError, match=r"blocks\[0\].tasks\[0\]='navigate' is not one of \['objectnav'"):
        suite(blocks=[{"name": "b", "tasks": ["navigate"]}])


def test_unknown_perturbation_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"perturbations\[0\]='fog' is not one of \['none', 'colour'"):
        suite(blocks=[{"name": "b", "perturbations": ["fog"]}])


def test_a_block_naming_an_unknown_policy_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"blocks\[b\].policies names unknown policies \['flare'\]"):
        suite(blocks=[{"name": "b", "policies": ["flare"]}])


def test_a_noisy_expert_without_noise_is_rejected() -> None:
    with pytest.raises(ConfigError, match="a noisy_expert needs noise > 0"):
        suite(policies=[{"name": "n", "kind": "noisy_expert"}])


def test_noise_out_of_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"policies\[n\].noise=1.5 is out of range \[0.0, 1.0\]"):
        suite(policies=[{"name": "n", "kind": "noisy_expert", "noise": 1.5}])


def test_a_checkpoint_policy_needs_a_checkpoint() -> None:
    with pytest.raises(ConfigError, match="a checkpoint policy needs a path or 'shipped'"):
        suite(policies=[{"name": "trained", "kind": "checkpoint"}])


def test_duplicate_policy_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"policy name\(s\) \['e'\] are used twice"):
        suite(policies=[{"name": "e"}, {"name": "e"}])


def test_a_policy_name_with_a_slash_is_rejected_because_it_would_break_keys() -> None:
    with pytest.raises(ConfigError, match="policy name 'a/b' must be non-empty letters"):
        suite(policies=[{"name": "a/b"}])


def test_infeasible_fraction_above_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"blocks\[b\].infeasible_fraction=2.0 is out of range"):
        suite(blocks=[{"name": "b", "infeasible_fraction": 2.0}])


def test_a_suite_without_blocks_is_rejected() -> None:
    with pytest.raises(ConfigError, match="the suite lists no blocks"):
        suite(blocks=[])


def test_load_suite_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"policies": [{"name": "e"}], "blocks": [{"name": "b"}], "step_budget": 0}))
    with pytest.raises(ConfigError, match=r"bad.yaml: step_budget=0 is out of range \[1, 10000\]"):
        load_suite(path)


def test_load_suite_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_suite(tmp_path / "absent.yaml")


SHIPPED_SUITES = sorted((REPO / "config").glob("eval_suite*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_SUITES, ids=lambda p: p.name)
def test_the_shipped_suites_load_and_expand_and_their_checkpoints_exist(path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)  # suites name checkpoints relative to the repository root, where they are run
    specs = expand(load_suite(path))
    assert specs and len({s.key for s in specs}) == len(specs)
    for policy in {s.policy for s in specs if s.policy.kind == "checkpoint"}:
        assert resolve_checkpoint(policy.checkpoint).is_dir(), policy


@pytest.mark.parametrize("path", SHIPPED_SUITES, ids=lambda p: p.name)
def test_no_suite_evaluates_a_cloned_policy_on_the_seeds_it_was_trained_on(path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    for spec in expand(load_suite(path)):
        if spec.policy.kind != "checkpoint":
            continue
        training = resolve_checkpoint(spec.policy.checkpoint) / "training.json"  # a BC checkpoint's data record
        if training.is_file() and "seed_range" in (record := json.loads(training.read_text())):
            low, high = record["seed_range"]
            assert not low <= spec.seed <= high, (f"{spec.key}: {spec.policy.checkpoint} was trained on seeds "
                                                  f"{low}-{high}")


def test_the_benchmark_suite_covers_every_policy_shield_perturbation_and_infeasible_tasks() -> None:
    specs = expand(load_suite(REPO / "config" / "eval_suite.yaml"))
    assert {s.policy.kind for s in specs} == {"expert", "noisy_expert", "checkpoint"}
    assert {s.shield for s in specs} == {False, True}
    assert {s.perturbation for s in specs} == {"none", "colour", "light", "material", "all"}
    assert {s.task for s in specs if not s.feasible} == set(TaskKind)
    assert all(s.step_budget == 600 for s in specs)


def test_sampled_decoding_is_only_for_checkpoint_policies() -> None:
    with pytest.raises(ConfigError, match="decoding='sample' applies only to kind checkpoint"):
        suite(policies=[{"name": "e", "kind": "expert", "decoding": "sample"}])


def test_an_unknown_decoding_is_rejected_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"decoding='beam' is not one of \['greedy', 'sample'\]"):
        suite(policies=[{"name": "c", "kind": "checkpoint", "checkpoint": "shipped", "decoding": "beam"}])

