"""The critic warm-up (``ppo.critic_warmup_steps``): only the critics learn until the run has taken that many
environment steps, then PPO trains the policy too (SafeVLA's first pipeline stage)."""

from __future__ import annotations

import math

import pytest
import torch

from policies.training.trainer import Trainer
from safevla_node.errors import ConfigError
from tests.training.toy import toy_config


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


def test_during_the_warm_up_only_the_critics_learn_and_the_policy_starts_after_it(tmp_path):
    # 8 environments x 16 steps = 128 steps per update: two updates of warm-up.
    trainer = Trainer(toy_config(ppo={"critic_warmup_steps": 256, "kl_coef": 0.5}), tmp_path, resume=False)
    policy = trainer.policy
    actor, critic, cost_critic = _snapshot(policy.actor), _snapshot(policy.critic), _snapshot(policy.cost_critic)
    rows = [trainer.train_one_update() for _ in range(2)]
    assert not _changed(actor, policy.actor)
    assert _changed(critic, policy.critic) and _changed(cost_critic, policy.cost_critic)
    assert all(math.isnan(row["kl_to_reference"]) for row in rows)  # no reference pass while warming up
    # Adam never saw the actor's parameters, so its first real step is an ordinary first step.
    optimizer_state = trainer.learner.optimizer.state
    assert all(p not in optimizer_state for p in policy.actor.parameters())
    row = trainer.train_one_update()
    assert _changed(actor, policy.actor)
    assert row["kl_to_reference"] >= 0.0
    trainer.close()


def test_a_resumed_run_knows_whether_its_warm_up_is_over(tmp_path):
    config = toy_config(ppo={"critic_warmup_steps": 256}, checkpoint_every=1)
    first = Trainer(config, tmp_path)
    first.run(stop_after=1)  # 128 of the 256 warm-up steps
    actor = _snapshot(first.policy.actor)
    first.close()
    resumed = Trainer(config, tmp_path)
    resumed.train_one_update()  # steps 128-255: still warming up
    assert not _changed(actor, resumed.policy.actor)
    resumed.train_one_update()
    assert _changed(actor, resumed.policy.actor)
    resumed.close()


def test_critic_warmup_steps_must_not_be_negative():
    with pytest.raises(ConfigError, match="critic_warmup_steps"):
        toy_config(ppo={"critic_warmup_steps": -1})
