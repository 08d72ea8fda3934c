"""Constrained PPO: rollout buffer with reward and cost, GAE for both, the Lagrangian clipped surrogate.

Policy loss (SafeVLA / omnisafe PPOLag): the PPO clipped surrogate on the combined advantage
``(A_r - sum_k lambda_k * A_c,k) / (1 + sum_k lambda_k)`` with the multipliers taken as constants; with one
constraint on the summed cost this is ``(A_r - lambda * A_c) / (1 + lambda)``. Value losses
``0.5 * (return - value)^2`` for the reward critic and every cost critic, weighted by ``value_coef``.
Advantages are standardised (reward) and centred (cost) over the rollout when ``normalize_advantages``, as
omnisafe's buffer does. An episode end (success, 'end', time limit) stops both bootstraps.

Critic warm-up (``critic_warmup_steps``): a run that starts from an imitation-learned policy starts with
critics that know nothing (zero value heads), so its first advantages are noise that the policy loss would
follow. SafeVLA's training pipeline therefore trains only the value losses for its first 200,000 steps; an
update with ``train_policy=False`` does the same, and the actor's parameters get no gradient at all (Adam
leaves them and their moments untouched).

``kl_coef`` adds ``kl_coef * KL(policy || reference)``, the exact KL over the action vocabulary at every
step, where the reference is the frozen starting policy (the anchor of RLHF-style fine-tuning). Fine-tuning a
behaviour-cloned policy whose reward is rarely seen otherwise lets the cost advantage alone drag the greedy
action onto a do-nothing turn in place (docs/finetuning.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from policies.training.actor_critic import Segment
from policies.training.config import PPOConfig

__all__ = ["PPOLearner", "RolloutBuffer", "combined_advantage", "gae", "sample_actions"]


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_values: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a (T, E, ...) rollout.

    ``dones[t]`` is 1 where the episode ended with step t (no bootstrap from ``values[t + 1]``);
    ``last_values`` (E, ...) are the values of the states after the rollout. Trailing dimensions of
    ``rewards``/``values`` (cost categories) share the same ``dones``. Returns (advantages, returns).
    """
    if rewards.shape != values.shape or values.shape[1:] != last_values.shape or dones.shape != rewards.shape[:2]:
        raise ValueError(f"gae shapes disagree: rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, "
                         f"dones {tuple(dones.shape)}, last_values {tuple(last_values.shape)}")
    steps = rewards.shape[0]
    mask = (1.0 - dones.to(values.dtype)).reshape(dones.shape + (1,) * (rewards.dim() - 2))
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(last_values)
    next_value = last_values
    for t in reversed(range(steps)):
        delta = rewards[t] + gamma * next_value * mask[t] - values[t]
        running = delta + gamma * lam * mask[t] * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def combined_advantage(adv_reward: torch.Tensor, adv_cost: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """``(A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k)``: adv_reward (N,), adv_cost (N, K), lambdas (K,)."""
    lambdas = lambdas.detach().to(adv_reward.dtype)
    if adv_cost.shape != adv_reward.shape + lambdas.shape:
        raise ValueError(f"adv_cost {tuple(adv_cost.shape)} must be adv_reward {tuple(adv_reward.shape)} x "
                         f"lambdas {tuple(lambdas.shape)}")
    return (adv_reward - adv_cost @ lambdas) / (1.0 + lambdas.sum())


@dataclass
class _Context:
    observations: list[Any]
    actions: list[int]


class RolloutBuffer:
    """One rollout of E environments x T steps, stored environment-major so an episode's steps are contiguous.

    ``contexts[e]`` holds the earlier steps of the episode environment ``e`` is in when the rollout starts
    (empty for a feed-forward policy or a fresh episode).
    """

    def __init__(self, num_envs: int, steps: int, num_costs: int,
                 contexts: Sequence[tuple[list[Any], list[int]]] | None = None) -> None:
        self.num_envs, self.steps, self.num_costs = num_envs, steps, num_costs
        self.observations: list[list[Any]] = [[] for _ in range(num_envs)]
        self.contexts = [_Context(list(o), list(a)) for o, a in (contexts or [([], [])] * num_envs)]
        shape = (steps, num_envs)
        self.actions = torch.zeros(shape, dtype=torch.long)
        self.log_probs = torch.zeros(shape)
        self.reward_values = torch.zeros(shape)
        self.cost_values = torch.zeros(shape + (num_costs,))
        self.rewards = torch.zeros(shape)
        self.costs = torch.zeros(shape + (num_costs,))
        self.dones = torch.zeros(shape)
        self._t = 0
        self.adv_reward = self.adv_cost = self.ret_reward = self.ret_cost = torch.empty(0)

    @property
    def full(self) -> bool:
        """True once ``steps`` steps were added."""
        return self._t == self.steps

    def add(self, observations: Sequence[Any], actions: torch.Tensor, log_probs: torch.Tensor,
            reward_values: torch.Tensor, cost_values: torch.Tensor, rewards: torch.Tensor, costs: torch.Tensor,
            dones: torch.Tensor) -> None:
        """Store one step of every environment (the observation is the one the action was chosen on)."""
        if self.full:
            raise IndexError(f"rollout buffer already holds {self.steps} steps")
        t = self._t
        for e, obs in enumerate(observations):
            self.observations[e].append(obs)
        self.actions[t], self.log_probs[t] = actions, log_probs
        self.reward_values[t], self.cost_values[t] = reward_values, cost_values
        self.rewards[t], self.costs[t], self.dones[t] = rewards, costs, dones.float()
        self._t += 1

    def finish(self, last_reward_values: torch.Tensor, last_cost_values: torch.Tensor, gamma: float,
               lam: float) -> None:
        """Compute advantages and returns of both critics (flattened environment-major)."""
        if not self.full:
            raise IndexError(f"rollout buffer holds {self._t} of {self.steps} steps")
        adv_r, ret_r = gae(self.rewards, self.reward_values, self.dones, last_reward_values, gamma, lam)
        adv_c, ret_c = gae(self.costs, self.cost_values, self.dones, last_cost_values, gamma, lam)
        self.adv_reward, self.ret_reward = self._flat(adv_r), self._flat(ret_r)
        self.adv_cost, self.ret_cost = self._flat(adv_c), self._flat(ret_c)

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1).reshape((-1,) + x.shape[2:])

    def flat(self, name: str) -> torch.Tensor:
        """A stored (T, E, ...) tensor flattened environment-major to (E*T, ...)."""
        return self._flat(getattr(self, name))

    def segments(self, env: int) -> list[Segment]:
        """Environment ``env``'s steps split at episode ends; the first carries the episode's context."""
        out: list[Segment] = []
        start = 0
        dones = self.dones[:, env].tolist()
        actions = self.actions[:, env].tolist()
        for t in range(self.steps):
            if dones[t] or t == self.steps - 1:
                ctx = self.contexts[env] if start == 0 else _Context([], [])
                out.append(Segment(ctx.observations + self.observations[env][start:t + 1],
                                   ctx.actions + actions[start:t + 1], len(ctx.observations)))
                start = t + 1
        return out


class PPOLearner:
    """Runs the PPO epochs on a finished buffer; ``model`` may be a DistributedDataParallel wrapper.

    ``reference`` is the frozen policy of the KL anchor; required when ``config.kl_coef`` > 0.
    """

    def __init__(self, model: nn.Module, config: PPOConfig, generator: torch.Generator,
                 reference: nn.Module | None = None) -> None:
        if config.kl_coef > 0 and reference is None:
            raise ValueError("ppo.kl_coef > 0 needs the reference policy to anchor to")
        self.model = model
        self.config = config
        self.generator = generator
        self.reference = reference
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)

    def update(self, buffer: RolloutBuffer, lambdas: torch.Tensor, train_policy: bool = True) -> dict[str, float]:
        """PPO epochs with the multipliers ``lambdas`` (K,) held fixed; returns mean losses and statistics.

        ``train_policy`` False trains the critics only (the warm-up; policy statistics are still reported,
        the KL to the reference as NaN)."""
        cfg = self.config
        adv_r, adv_c = buffer.adv_reward, buffer.adv_cost
        if cfg.normalize_advantages:
            adv_r = (adv_r - adv_r.mean()) / (adv_r.std(unbiased=False) + 1e-8)
            adv_c = adv_c - adv_c.mean(dim=0)
        advantages = combined_advantage(adv_r, adv_c, lambdas)
        old_log_probs, actions = buffer.flat("log_probs"), buffer.flat("actions")
        device = next(self.model.parameters()).device
        reference = self._reference_log_probs(buffer) if train_policy else None
        totals: dict[str, float] = {}
        batches = 0
        for _ in range(cfg.epochs):
            order = torch.randperm(buffer.num_envs, generator=self.generator)
            for group in order.chunk(min(cfg.num_minibatches, buffer.num_envs)):
                envs = sorted(group.tolist())
                index = torch.cat([torch.arange(e * buffer.steps, (e + 1) * buffer.steps) for e in envs])
                segments = [s for e in envs for s in buffer.segments(e)]
                stats = self._step(segments, index, advantages, old_log_probs, actions, reference, buffer, device,
                                   train_policy)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                batches += 1
        return {key: value / batches for key, value in totals.items()}

    def _step(self, segments: list[Segment], index: torch.Tensor, advantages: torch.Tensor,
              old_log_probs: torch.Tensor, actions: torch.Tensor, reference: torch.Tensor | None,
              buffer: RolloutBuffer, device: torch.device, train_policy: bool) -> dict[str, float]:
        cfg = self.config
        heads = self.model(segments)
        adv = advantages[index].to(device)
        log_all = torch.log_softmax(heads.logits.float(), dim=-1)
        log_probs = log_all.gather(1, actions[index].to(device)[:, None])[:, 0]
        ratio = torch.exp(log_probs - old_log_probs[index].to(device))
        surrogate = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv).mean()
        value_loss = 0.5 * (buffer.ret_reward[index].to(device) - heads.reward_value.float()).pow(2).mean()
        cost_loss = 0.5 * (buffer.ret_cost[index].to(device) - heads.cost_value.float()).pow(2).mean()
        entropy = -(log_all.exp() * log_all).sum(-1).mean()
        kl = (log_all.new_zeros(()) if reference is None else
              nn.functional.kl_div(reference[index].to(device), log_all, log_target=True, reduction="batchmean"))
        loss = cfg.value_coef * (value_loss + cost_loss)
        if train_policy:
            loss = loss + surrogate - cfg.entropy_coef * entropy + cfg.kl_coef * kl
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        return {"policy_loss": surrogate.item(), "value_loss": value_loss.item(), "cost_value_loss": cost_loss.item(),
                "entropy": entropy.item(), "grad_norm": grad_norm.item(),
                "kl_to_reference": kl.item() if reference is not None or cfg.kl_coef == 0 else math.nan,
                "clip_fraction": float(((ratio - 1).abs() > cfg.clip).float().mean())}

    def _reference_log_probs(self, buffer: RolloutBuffer) -> torch.Tensor | None:
        """The reference policy's log-probabilities at every step of the rollout (flattened environment-major),
        once per update: they do not change over the epochs. None without a reference."""
        if self.reference is None:
            return None
        with torch.no_grad():
            logits = [self.reference(buffer.segments(e)).logits.float() for e in range(buffer.num_envs)]
        return torch.log_softmax(torch.cat(logits), dim=-1)


def sample_actions(heads_logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one action per row of (E, A) logits; returns (actions, log-probabilities)."""
    log_p = torch.log_softmax(heads_logits.float().cpu(), dim=-1)
    actions = torch.multinomial(log_p.exp(), 1, generator=generator)[:, 0]
    return actions, log_p.gather(1, actions[:, None])[:, 0]

