"""The KL anchor to the starting policy (``ppo.kl_coef``): its value, its pull, and what a resume anchors to."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.training.config import PPOConfig
from policies.training.ppo import PPOLearner
from policies.training.toy_cmdp import MLPActorCritic
from policies.training.trainer import Trainer
from safevla_node.errors import ConfigError
from tests.training.toy import toy_config

TOY_OBSERVATION = np.ones(1, dtype=np.float32)  # the toy CMDP's only state


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * (np.log(p) - np.log(q))))


def _trained(tmp_path, kl_coef: float, updates: int = 60) -> Trainer:
    # No binding constraint: the reward alone pulls the policy onto the rewarding action.
    trainer = Trainer(toy_config(ppo={"kl_coef": kl_coef}, constraint={"cost_limit": 100.0}), tmp_path,
                      resume=False)
    for _ in range(updates):
        trainer.train_one_update()
    return trainer


def test_reported_kl_is_the_exact_kl_between_the_policy_and_its_reference(tmp_path):
    trainer = _trained(tmp_path, kl_coef=0.5, updates=20)
    p = trainer.policy.probabilities(TOY_OBSERVATION)
    q = trainer.learner.reference.probabilities(TOY_OBSERVATION)
    assert _kl(p, q) > 1e-3  # the policy has moved, so the check below compares two different distributions
    # One epoch of one minibatch: the reported KL is computed before the only optimiser step.
    trainer.learner.config = PPOConfig(epochs=1, num_minibatches=1, kl_coef=0.5, lr=0.02)
    buffer, _ = trainer.collect()
    stats = trainer.learner.update(buffer, trainer.multipliers.values())
    assert stats["kl_to_reference"] == pytest.approx(_kl(p, q), rel=1e-4)


def test_anchor_holds_the_policy_near_its_start_where_the_reward_alone_moves_it_away(tmp_path):
    free = _trained(tmp_path / "free", kl_coef=0.0)
    anchored = _trained(tmp_path / "anchored", kl_coef=2.0)
    start = anchored.learner.reference.probabilities(TOY_OBSERVATION)
    p_free = free.policy.probabilities(TOY_OBSERVATION)
    p_anchored = anchored.policy.probabilities(TOY_OBSERVATION)
    assert p_free[1] > 0.9  # unanchored, PPO goes for the rewarding action
    assert _kl(p_anchored, start) < _kl(p_free, start) / 5
    assert p_anchored[1] > start[1]  # the anchor slows the move, it does not forbid it


def test_resumed_run_anchors_to_the_policy_the_first_run_started_from(tmp_path):
    config = toy_config(ppo={"kl_coef": 0.5}, checkpoint_every=1)
    first = Trainer(config, tmp_path)
    start = first.learner.reference.probabilities(TOY_OBSERVATION)
    np.testing.assert_array_equal(start, first.policy.probabilities(TOY_OBSERVATION))
    first.run(stop_after=5)
    first.close()
    resumed = Trainer(config, tmp_path)
    assert resumed.update == 5
    np.testing.assert_array_equal(resumed.learner.reference.probabilities(TOY_OBSERVATION), start)
    assert not np.allclose(resumed.policy.probabilities(TOY_OBSERVATION), start)
    resumed.close()


def test_kl_coef_must_be_non_negative_and_needs_a_reference():
    with pytest.raises(ConfigError, match="kl_coef"):
        toy_config(ppo={"kl_coef": -0.1})
    model = MLPActorCritic(1, 2, 1)
    with pytest.raises(ValueError, match="needs the reference policy"):
        PPOLearner(model, PPOConfig(kl_coef=0.1), torch.Generator())
