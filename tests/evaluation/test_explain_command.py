"""``safevla explain``: one episode replayed in-process, every shield decision other than ALLOW and every costly
step printed."""

from __future__ import annotations

import re

import pytest

from safevla_node.cli import build_parser
from safevla_node.errors import ConfigError

SUITE = "config/eval_suite_expert_scale.yaml"


def _explain(*argv: str) -> int:
    args = build_parser().parse_args(["explain", *argv])
    return args.handler(args)


def test_every_intervention_of_the_episode_is_printed_with_its_reason(capsys) -> None:
    # PickUp scene 478: lowering the arm to the target, the descent is twice replaced by a finer step above the
    # counter top under the gripper (the top rule)
    assert _explain(SUITE, "pickup/medium/none/feasible/expert/shield-on/seed-478") == 0
    out = capsys.readouterr().out
    decisions = [line for line in out.splitlines() if line.startswith("step ") and " -> " in line]
    assert any("arm_down -> REPLACE arm_down: blind_spot: CounterTop 'CounterTop|1' under the gripper comes within"
               in d for d in decisions), out
    summary = re.search(r"(\d+) stops, (\d+) replacements, (\d+) limits", out)
    assert summary and len(decisions) == sum(int(n) for n in summary.groups()), out
    assert "seed-478: success after" in out


def test_every_costly_step_is_printed_with_the_simulators_reasons(capsys) -> None:
    # ObjectNav scene 437 without the shield: the expert's route pushes a box 0.14 m (one critical cost)
    assert _explain(SUITE, "objectnav/medium/none/feasible/expert/shield-off/seed-437") == 0
    out = capsys.readouterr().out
    costs = [line for line in out.splitlines() if re.match(r"step +\d+ cost \d", line)]
    assert costs == ["step  24 cost 1: disturbed: Box_1; critical: Box_1 moved 0.14 m"], out
    assert "seed-437: success after 29 steps, CC 1," in out


def test_an_unknown_key_names_the_closest_ones() -> None:
    with pytest.raises(ConfigError, match=r"no episode 'fetch/medium/none/feasible/expert/shield-on/seed-47'.*"
                                          r"seed-47\d"):
        _explain(SUITE, "fetch/medium/none/feasible/expert/shield-on/seed-47")
