"""GAE, the combined advantage, the rollout buffer's segments and the sum / per-category switch."""

from __future__ import annotations

import pytest
import torch

from policies.training.config import ConstraintConfig
from policies.training.ppo import RolloutBuffer, combined_advantage, gae
from policies.training.trainer import Trainer
from safevla_node.errors import ConfigError
from tests.training.toy import toy_config


def test_gae_matches_a_hand_computed_rollout_with_an_episode_end():
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.4], [0.3]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    adv, ret = gae(rewards, values, dones, torch.tensor([1.0]), gamma=0.9, lam=0.8)
    # t=2: 2 + 0.9*1.0 - 0.3 = 2.6; t=1 (episode ends): 0 - 0.4 = -0.4;
    # t=0: delta = 1 + 0.9*0.4 - 0.5 = 0.86, A = 0.86 + 0.9*0.8*(-0.4) = 0.572
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.572, -0.4, 2.6]))
    torch.testing.assert_close(ret[:, 0], torch.tensor([1.072, 0.0, 2.9]))


def test_gae_treats_every_cost_category_with_the_same_episode_ends():
    rewards = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[2.0, 1.0]]])
    values = torch.tensor([[[0.5, 0.0]], [[0.4, 0.0]], [[0.3, 0.0]]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    adv, _ = gae(rewards, values, dones, torch.tensor([[1.0, 0.0]]), gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv[:, 0, 0], torch.tensor([0.572, -0.4, 2.6]))
    torch.testing.assert_close(adv[:, 0, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_gae_rejects_shapes_that_disagree():
    with pytest.raises(ValueError, match="gae shapes disagree"):
        gae(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3), 0.9, 0.9)


def test_combined_advantage_is_reward_minus_weighted_costs_over_one_plus_lambdas():
    adv_r = torch.tensor([1.0, -2.0])
    adv_c = torch.tensor([[0.5, 1.0], [2.0, 0.0]])
    got = combined_advantage(adv_r, adv_c, torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(got, torch.tensor([(1 - 0.25 - 0.25) / 1.75, (-2 - 1.0) / 1.75]))
    single = combined_advantage(adv_r, adv_c[:, :1], torch.tensor([2.0]))
    torch.testing.assert_close(single, (adv_r - 2.0 * adv_c[:, 0]) / 3.0)


def test_combined_advantage_does_not_backpropagate_into_lambda():
    lam = torch.tensor([0.5], requires_grad=True)
    assert not combined_advantage(torch.ones(2), torch.ones(2, 1), lam).requires_grad


def test_buffer_splits_environment_steps_into_episode_segments_with_context_first():
    buffer = RolloutBuffer(num_envs=1, steps=4, num_costs=1, contexts=[(["c0", "c1"], [7, 8])])
    for t, done in enumerate([0, 1, 0, 0]):
        buffer.add([f"o{t}"], torch.tensor([t]), torch.zeros(1), torch.zeros(1), torch.zeros(1, 1),
                   torch.zeros(1), torch.zeros(1, 1), torch.tensor([done]))
    first, second = buffer.segments(0)
    assert (list(first.observations), list(first.actions), first.context) == (["c0", "c1", "o0", "o1"],
                                                                             [7, 8, 0, 1], 2)
    assert (list(second.observations), list(second.actions), second.context) == (["o2", "o3"], [2, 3], 0)
    with pytest.raises(IndexError, match="already holds 4 steps"):
        buffer.add(["x"], torch.tensor([0]), torch.zeros(1), torch.zeros(1), torch.zeros(1, 1), torch.zeros(1),
                   torch.zeros(1, 1), torch.tensor([0]))


def test_constraint_switch_gives_one_total_or_one_limit_per_category():
    names = ("corner", "danger")
    assert ConstraintConfig(cost_limit=2.31).limits(names) == {"total": 2.31}
    per = ConstraintConfig(mode="per_category", category_limits=(1.0, 0.5))
    assert per.limits(names) == {"corner": 1.0, "danger": 0.5}
    with pytest.raises(ConfigError, match="category_limits has 1 values but the environment has 2"):
        ConstraintConfig(mode="per_category", category_limits=(1.0,)).limits(names)


def test_trainer_in_per_category_mode_keeps_a_multiplier_and_a_cost_critic_per_category(tmp_path):
    config = toy_config(updates=1, constraint={"mode": "per_category", "category_limits": [1.0, 2.0]},
                        env={"toy_rewards": [0.0, 1.0, 1.0], "toy_costs": [[0, 0], [1, 0], [0, 1]]})
    trainer = Trainer(config, tmp_path, resume=False)
    row = trainer.train_one_update()
    assert trainer.constraints == ("c0", "c1")
    assert trainer.policy.num_cost_heads == 2
    assert {"lambda_c0", "lambda_c1", "cost_c0", "cost_c1"} <= row.keys()
    summed = Trainer(toy_config(updates=1, env={"toy_rewards": [0.0, 1.0, 1.0],
                                                "toy_costs": [[0, 0], [1, 0], [0, 1]]}), tmp_path / "s", resume=False)
    assert summed.constraints == ("total",) and summed.policy.num_cost_heads == 1
    torch.testing.assert_close(summed._costs([(1.0, 2.0)]), torch.tensor([[3.0]]))

