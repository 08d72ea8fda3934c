"""Discrete action execution of the bridge core, and the evaluation proposer it hosts, on the real MuJoCo
backend: each action the monitor lets through runs whole and closes one step, a refusal spends one step
standing still, and the result equals in-process execution of the same actions."""

from __future__ import annotations

import math

import pytest

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.errors import ConfigError
from safevla_node.evaluation.proposer import BridgeProposer, ProposerConfig
from safevla_node.evaluation.runner import home_backend_kwargs
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import VerdictKind
from sim_bridge.bridge import BridgeConfig, SimBridge
from sim_bridge.interface import TaskKind
from sim_bridge.registry import make_backend

AHEAD = ACTION_BY_CODE["m"].index
RUNNING, DONE, ABORTED = PrimitivePhase.RUNNING, PrimitivePhase.DONE, PrimitivePhase.ABORTED


def backend():
    return make_backend("mujoco", **home_backend_kwargs("easy", "none", (64, 48), depth=False))


@pytest.fixture
def bridge():
    config = BridgeConfig(action_execution="discrete", render=False, task="objectnav", seed=3)
    sim = SimBridge(backend(), config)
    sim.reset()
    yield sim
    sim.backend.close()


def status(phase: PrimitivePhase, proposal: int, action: int = AHEAD, executed: int | None = None,
           verdict: str = "allow") -> PrimitiveStatus:
    return PrimitiveStatus(phase, proposal, action, action if executed is None else executed, "", verdict)


def test_a_running_decision_executes_the_action_whole_and_closes_exactly_one_step(bridge):
    start = bridge.observation.snapshot.robot
    bridge.on_primitive_status(status(RUNNING, 1))
    moved = bridge.observation.snapshot.robot
    assert bridge.status().steps == 1
    assert moved.x - start.x == pytest.approx(0.2 * math.cos(start.yaw), abs=0.02)
    assert bridge.on_primitive_status(status(DONE, 1)) is None  # its end closes nothing more
    assert bridge.status().steps == 1


def test_the_same_actions_give_the_same_world_as_in_process_execution(bridge):
    reference = backend()
    reference.reset(3, TaskKind("objectnav"))
    turn = ACTION_BY_CODE["r"].index
    for proposal, action in enumerate((AHEAD, turn, AHEAD), start=1):
        bridge.on_primitive_status(status(RUNNING, proposal, action))
        expected = reference.execute_action(action, render=False)
    assert bridge.observation.snapshot.robot == expected.observation.snapshot.robot
    assert bridge.status().cumulative_cost == reference.status().cumulative_cost
    reference.close()


def test_a_refused_proposal_spends_one_step_standing_still(bridge):
    start = bridge.observation.snapshot.robot
    bridge.on_primitive_status(status(ABORTED, 1, verdict="stop"))
    assert bridge.status().steps == 1
    assert bridge.observation.snapshot.robot == start


def test_commands_are_ignored_and_time_runs_without_moving_the_world(bridge):
    start = bridge.observation.snapshot.robot
    before = bridge.time
    bridge.on_twist(0.3, 0.0)
    for _ in range(50):
        step = bridge.step()
    assert bridge.time == pytest.approx(before + 50 * bridge.config.physics_dt_s)
    assert step.observation.time == pytest.approx(bridge.time)
    assert bridge.observation.snapshot.robot == start


def test_a_proposer_needs_discrete_execution():
    with pytest.raises(ConfigError, match="needs action_execution 'discrete'"):
        BridgeConfig(proposer=ProposerConfig(kind="expert"))


def test_the_proposer_rejects_noise_for_the_plain_expert():
    with pytest.raises(ConfigError, match="applies only to kind noisy_expert"):
        ProposerConfig(kind="expert", noise=0.2)


def test_the_proposer_acts_once_per_step_and_counts_the_monitors_verdicts(bridge):
    proposer = BridgeProposer()
    proposer.reset(ProposerConfig(kind="expert", step_budget=5, settle_s=0.1), bridge.backend,
                   bridge.status().task, 3, bridge.time)
    proposer.on_status(PrimitiveStatus(PrimitivePhase.IDLE, 6, reason="episode reset"))
    assert proposer.poll(bridge.time, bridge.observation, bridge.status()) is None  # still settling
    first = proposer.poll(bridge.time + 0.1, bridge.observation, bridge.status())
    assert first is not None
    assert proposer.poll(bridge.time + 0.2, bridge.observation, bridge.status()) is None  # awaiting decision
    proposer.on_status(status(ABORTED, 7, first.action_index, verdict="stop"))
    second = proposer.poll(bridge.time + 0.3, bridge.observation, bridge.status())
    assert second is not None
    decided = status(RUNNING, 8, second.action_index, verdict="limit")
    proposer.on_status(decided)
    bridge.on_primitive_status(decided)
    assert proposer.poll(bridge.time + 0.4, bridge.observation, bridge.status()) is None  # primitive running
    proposer.on_status(status(DONE, 8, second.action_index, verdict=""))
    assert proposer.poll(bridge.time + 0.5, bridge.observation, bridge.status()) is not None
    assert proposer.interventions[VerdictKind.STOP] == 1 and proposer.interventions[VerdictKind.LIMIT] == 1
    assert proposer.intervention_counts() == {"limits": 1, "replacements": 0, "stops": 1}


def test_the_proposer_waits_for_the_monitor_to_acknowledge_each_reset(bridge):
    """Settled or not, nothing is proposed before the monitor's IDLE status says it took the reset: a
    proposal it has not heard of, or a decision that cannot reach the bridge, would be lost."""
    proposer = BridgeProposer()
    config = ProposerConfig(kind="expert", step_budget=5, settle_s=0.0)
    task = bridge.status().task
    proposer.reset(config, bridge.backend, task, 3, bridge.time)
    assert not proposer.acknowledged
    assert proposer.poll(bridge.time + 10.0, bridge.observation, bridge.status()) is None
    proposer.on_status(status(ABORTED, 1, verdict="stop"))  # a late status of the old episode is no answer
    assert proposer.poll(bridge.time + 10.0, bridge.observation, bridge.status()) is None
    proposer.on_status(PrimitiveStatus(PrimitivePhase.IDLE, 1, reason="episode reset"))
    assert proposer.acknowledged
    assert proposer.poll(bridge.time + 10.0, bridge.observation, bridge.status()) is not None
    proposer.reset(config, bridge.backend, task, 3, bridge.time)  # every reset needs its own answer
    assert not proposer.acknowledged
    assert proposer.poll(bridge.time + 10.0, bridge.observation, bridge.status()) is None
