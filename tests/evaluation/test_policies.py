"""Policy adapters on the real MuJoCo backend: expert, seeded noisy expert, a saved tiny checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from safevla_node.actions import ACTIONS, NUM_ACTIONS, ActionKind
from safevla_node.errors import PolicyLoadError
from safevla_node.evaluation.policies import (
    CheckpointPolicy,
    ExpertPolicy,
    NoisyExpertPolicy,
    resolve_checkpoint,
)
from sim_bridge.homegen import HomeGenConfig
from sim_bridge.interface import SimBackend, TaskKind
from sim_bridge.registry import make_backend

REPO = Path(__file__).resolve().parents[2]
EPISODE_ACTIONS = {a.index for a in ACTIONS if a.kind is ActionKind.EPISODE}


@pytest.fixture(scope="module")
def backend() -> Iterator[SimBackend]:
    sim = make_backend("mujoco", home_config=HomeGenConfig.easy(), camera_size=(96, 54), depth=False)
    yield sim
    sim.close()


def rollout(policy: ExpertPolicy, backend: SimBackend, seed: int, steps: int) -> list[tuple[int, np.ndarray]]:
    observation = backend.reset(seed, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, seed)
    out = []
    for _ in range(steps):
        index, probs = policy.act(observation)
        out.append((index, probs))
        if backend.status().done:
            break
        observation = backend.execute_action(index, render=False).observation
    return out


def test_the_expert_distribution_ranks_its_planned_action_first(backend: SimBackend) -> None:
    steps = rollout(ExpertPolicy(backend), backend, 0, 12)
    for index, probs in steps:
        assert probs.sum() == pytest.approx(1.0)
        assert probs[index] == probs.max() and int(np.argmax(probs)) == index
    driving = [probs for index, probs in steps if ACTIONS[index].kind is ActionKind.BASE]
    assert driving, "the first steps of the episode drive"
    assert all((p[[a.index for a in ACTIONS if a.kind is ActionKind.BASE]] > 0).all() for p in driving)


def test_an_action_refused_at_a_pose_is_not_proposed_again_there(backend: SimBackend) -> None:
    policy = ExpertPolicy(backend)
    backend.reset(0, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, 0)
    observation = backend.observe(render=False)
    first, _ = policy.act(observation)
    policy.executed(None)  # the shield stopped it: the robot stays where it was
    second, probs = policy.act(observation)
    assert second != first and probs[first] == 0.0
    policy.executed(second)
    moved = backend.execute_action(second, render=False).observation
    third, probs = policy.act(moved)  # elsewhere every action may be tried again
    assert probs[third] == probs.max()


def test_the_expert_refuses_to_act_before_reset(backend: SimBackend) -> None:
    with pytest.raises(RuntimeError, match=r"ExpertPolicy.act before reset"):
        ExpertPolicy(backend).act(backend.observe(render=False))


def test_the_noisy_expert_repeats_its_noise_for_the_same_seed(backend: SimBackend) -> None:
    policy = NoisyExpertPolicy(backend, 0.5)
    first = [i for i, _ in rollout(policy, backend, 0, 12)]
    second = [i for i, _ in rollout(policy, backend, 0, 12)]
    expert = [i for i, _ in rollout(ExpertPolicy(backend), backend, 0, 12)]
    assert first == second
    assert first != expert  # at noise 0.5 some of 12 steps are random


def test_the_noisy_expert_reports_the_mixture_and_never_draws_an_episode_action(backend: SimBackend) -> None:
    policy = NoisyExpertPolicy(backend, 1.0)  # every action random
    steps = rollout(policy, backend, 3, 20)
    assert all(index not in EPISODE_ACTIONS for index, _ in steps)
    for _, probs in steps:
        assert probs.sum() == pytest.approx(1.0)
        assert all(probs[i] == 0.0 for i in EPISODE_ACTIONS)


def test_the_noisy_expert_honours_the_action_mask(backend: SimBackend) -> None:
    policy = NoisyExpertPolicy(backend, 1.0)
    observation = backend.reset(0, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, 0)
    mask = np.zeros(NUM_ACTIONS, dtype=bool)
    mask[[1, 2]] = True
    assert {policy.act(observation, mask)[0] for _ in range(10)} <= {1, 2}


def test_a_noise_rate_outside_zero_one_is_rejected(backend: SimBackend) -> None:
    with pytest.raises(ValueError, match=r"noise=0.0 must be in \(0, 1\]"):
        NoisyExpertPolicy(backend, 0.0)


def test_a_missing_checkpoint_is_a_policy_load_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match=r"absent does not exist: check the suite's checkpoint path"):
        resolve_checkpoint(str(tmp_path / "absent"))


def test_the_shipped_checkpoint_error_says_where_it_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    import safevla_node.evaluation.policies as adapters

    monkeypatch.setattr(adapters, "SHIPPED_CHECKPOINT", Path("checkpoints") / "absent_policy")
    with pytest.raises(PolicyLoadError, match=r"'shipped' is .*policies/checkpoints/absent_policy, written by the tr"):
        resolve_checkpoint("shipped")


def test_shipped_resolves_to_the_committed_bc_checkpoint() -> None:
    assert resolve_checkpoint("shipped") == REPO / "policies" / "checkpoints" / "bc_tiny"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained tiny SafeVLA saved in our directory format: a real checkpoint to load."""
    import torch

    from policies.configuration_safevla import load_policy_config
    from policies.encoders.dinov2 import PooledDinoFeatures
    from policies.modeling_safevla import SafeVLAModel
    from policies.processor_safevla import WordTokenizer
    from policies.runtime import SafeVLAPolicy

    config = load_policy_config(REPO / "config" / "policy_tiny.yaml")
    torch.manual_seed(0)
    policy = SafeVLAPolicy(config, SafeVLAModel(config), PooledDinoFeatures(config.image_encoder, config.pooled_grid),
                           WordTokenizer.from_texts(["find a book", "pick up the mug"]), device="cpu",
                           precision="fp32")
    return policy.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_a_checkpoint_policy_acts_on_rendered_frames_and_accepts_the_executed_action(
    backend: SimBackend, tiny_checkpoint: Path
) -> None:
    policy = CheckpointPolicy(str(tiny_checkpoint))
    observation = backend.reset(0, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, 0)
    index, probs = policy.act(observation)
    assert 0 <= index < NUM_ACTIONS
    assert probs.shape == (NUM_ACTIONS,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    policy.executed(2)
    policy.act(backend.execute_action(2).observation)


def test_a_checkpoint_policy_rejects_an_unrendered_observation(backend: SimBackend, tiny_checkpoint: Path) -> None:
    policy = CheckpointPolicy(str(tiny_checkpoint))
    backend.reset(0, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, 0)
    with pytest.raises(ValueError, match="needs both camera frames"):
        policy.act(backend.observe(render=False))


def sampled_actions(policy: CheckpointPolicy, backend: SimBackend, seed: int, steps: int = 6) -> list[int]:
    """Actions of ``steps`` steps, each executed (a real rollout, the executed action fed back)."""
    observation = backend.reset(0, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, seed)
    actions = []
    for _ in range(steps):
        index, _probs = policy.act(observation)
        executed = index if ACTIONS[index].kind is not ActionKind.EPISODE else 2  # keep the episode going
        policy.executed(executed)
        actions.append(index)
        observation = backend.execute_action(executed).observation
    return actions


def test_a_sampled_checkpoint_policy_draws_reproducibly_per_episode_seed(
    backend: SimBackend, tiny_checkpoint: Path
) -> None:
    policy = CheckpointPolicy(str(tiny_checkpoint), decoding="sample")
    first, again = sampled_actions(policy, backend, seed=3), sampled_actions(policy, backend, seed=3)
    assert first == again
    greedy = sampled_actions(CheckpointPolicy(str(tiny_checkpoint)), backend, seed=3)
    other_seeds = [sampled_actions(policy, backend, seed=s) for s in (4, 5)]
    assert any(actions != first for actions in [greedy, *other_seeds])  # an untrained net is near uniform


def test_a_sampled_checkpoint_policy_never_draws_a_masked_action(backend: SimBackend, tiny_checkpoint: Path) -> None:
    policy = CheckpointPolicy(str(tiny_checkpoint), decoding="sample")
    observation = backend.reset(0, TaskKind.OBJECT_NAV)
    policy.reset(backend.status().task, 0)
    mask = np.zeros(NUM_ACTIONS, dtype=bool)
    mask[[2, 3]] = True
    for _ in range(10):
        index, probs = policy.act(observation, mask)
        assert index in (2, 3) and probs[~mask].sum() == 0.0
