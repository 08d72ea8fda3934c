"""A tiny CMDP with an analytically known constrained optimum, and a small MLP actor-critic for it.

Every step shows the same observation; action 0 is free and earns nothing, action ``i >= 1`` earns
``rewards[i] > 0`` and costs ``costs[i][i - 1] > 0`` in cost category ``i - 1`` only. Episodes last ``horizon``
steps. With limits ``d_k`` on the episode cost of each category, the best stationary policy takes action ``i``
with probability ``p_i = d_{i-1} / (horizon * costs[i][i-1])`` (when these sum to at most 1): every
costly action pays, so each constraint is active. The unconstrained optimum is the best-paying action
always, so the trained probabilities landing on ``p_i`` shows the multipliers doing their job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from policies.training.actor_critic import ActorCritic, Heads, Segment
from policies.training.env import TrainingEnv

__all__ = ["MLPActorCritic", "ToyCMDP"]


class ToyCMDP(TrainingEnv):
    """See the module docstring."""

    def __init__(self, rewards: Sequence[float], costs: Sequence[Sequence[float]], horizon: int) -> None:
        self.rewards = np.asarray(rewards, dtype=np.float64)
        self.costs = np.asarray(costs, dtype=np.float64)
        if self.costs.ndim != 2 or self.costs.shape[0] != len(self.rewards):
            raise ValueError(f"toy costs must be one row per action ({len(self.rewards)}), got shape "
                             f"{self.costs.shape}")
        if horizon < 1:
            raise ValueError(f"toy horizon={horizon} must be >= 1")
        self.horizon = horizon
        self.num_actions = len(self.rewards)
        self.cost_names = tuple(f"c{k}" for k in range(self.costs.shape[1]))
        self._t = 0

    def reset(self, seed: int) -> np.ndarray:
        self._t = 0
        return np.ones(1, dtype=np.float32)

    def step(self, action: int) -> tuple[Any, float, tuple[float, ...], bool, bool]:
        if not 0 <= action < self.num_actions:
            raise ValueError(f"toy action {action} out of range [0, {self.num_actions})")
        self._t += 1
        costs = tuple(float(c) for c in self.costs[action])
        return np.ones(1, dtype=np.float32), float(self.rewards[action]), costs, self._t >= self.horizon, False

    def optimum(self, limits: Sequence[float]) -> np.ndarray:
        """Action probabilities of the constrained optimum for episode-cost limits per category.

        Raises:
            ValueError: the CMDP is not of the documented shape, or the limits leave no room for action 0.
        """
        n = self.num_actions - 1
        expected = np.zeros((n + 1, n))
        expected[1:] = np.diag(np.diag(self.costs[1:]))
        if self.costs.shape[1] != n or not np.array_equal(self.costs, expected) or self.rewards[0] != 0 \
                or (self.rewards[1:] <= 0).any() or (np.diag(self.costs[1:]) <= 0).any():
            raise ValueError("optimum() needs action 0 free and action i costing only in category i-1")
        p = np.asarray(limits, dtype=np.float64) / (self.horizon * np.diag(self.costs[1:]))
        if p.sum() > 1:
            raise ValueError(f"limits {list(limits)} allow more costly actions than there are steps")
        return np.concatenate([[1 - p.sum()], p])


class MLPActorCritic(ActorCritic):
    """Separate two-layer MLPs for the actor, the reward critic and the cost critics."""

    def __init__(self, obs_dim: int, num_actions: int, num_cost_heads: int, hidden: int = 32) -> None:
        super().__init__()
        self.num_actions, self.num_cost_heads = num_actions, num_cost_heads

        def mlp(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, out))

        self.actor, self.critic, self.cost_critic = mlp(num_actions), mlp(1), mlp(num_cost_heads)

    def encode(self, raw_observations: Sequence[Any]) -> list[Any]:
        return [torch.as_tensor(np.asarray(o), dtype=torch.float32) for o in raw_observations]

    def begin_episodes(self, env_slots: Sequence[int], num_slots: int) -> None:
        """Feed-forward: nothing to forget."""

    def _heads(self, x: torch.Tensor) -> Heads:
        return Heads(self.actor(x), self.critic(x)[:, 0], self.cost_critic(x))

    def act(self, observations: Sequence[Any], prev_actions: torch.Tensor, episode_steps: torch.Tensor,
            advance: bool = True) -> Heads:
        return self._heads(torch.stack(list(observations)))

    def forward(self, segments: Sequence[Segment]) -> Heads:
        return self._heads(torch.stack([o for s in segments for o in s.observations[s.context:]]))

    def probabilities(self, observation: np.ndarray) -> np.ndarray:
        """Action probabilities at ``observation`` (the toy CMDP has only one)."""
        with torch.no_grad():
            x = torch.as_tensor(observation, dtype=torch.float32)[None]
            return torch.softmax(self.actor(x), -1)[0].numpy()
