"""The small actor-critic protocol the PPO learner trains: the toy MLP and the SafeVLA model both fit it.

Two paths, because a recurrent model runs differently while acting and while learning:

* acting (rollouts, no gradient): ``begin_episodes`` clears the recurrent state of some environment slots,
  then ``act`` advances every slot by one step (the SafeVLA model through its KV cache).
* learning: ``forward(segments)`` recomputes the heads with gradients over whole stored sequences. A segment
  is one environment's steps of one rollout that belong to one episode, preceded by that episode's earlier
  steps (``context``) when the episode began in an earlier rollout. A recurrent model runs a causal forward
  over context + steps without a cache, which gives the same outputs as the cached steps did, and only the
  segment's own steps are returned; a feed-forward model ignores the context.
  ``forward`` is the method DistributedDataParallel wraps.

Observations pass through ``encode`` once, in the rollout, and the buffer keeps what it returns (e.g. the frozen
image encoder's pooled features instead of camera frames).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = ["ActorCritic", "Heads", "Segment"]


class Heads(NamedTuple):
    """Network outputs for N steps: logits (N, A), reward_value (N,), cost_value (N, K).

    A tuple, so DistributedDataParallel finds the output tensors.
    """

    logits: torch.Tensor
    reward_value: torch.Tensor
    cost_value: torch.Tensor


@dataclass(frozen=True)
class Segment:
    """Stored steps of one environment within one episode.

    Attributes:
        observations: encoded observations, context first, then the segment's own steps.
        actions: the action taken at every one of those steps (same length).
        context: how many leading entries are earlier steps of the episode (outputs not wanted).
    """

    observations: Sequence[Any]
    actions: Sequence[int]
    context: int = 0

    def __post_init__(self) -> None:
        if len(self.observations) != len(self.actions):
            raise ValueError(f"segment has {len(self.observations)} observations but {len(self.actions)} actions")
        if not 0 <= self.context < len(self.observations):
            raise ValueError(f"segment context={self.context} must leave at least one of "
                             f"{len(self.observations)} steps")

    @property
    def steps(self) -> int:
        """Number of the segment's own steps."""
        return len(self.observations) - self.context


class ActorCritic(nn.Module, ABC):
    """A policy with a reward critic and ``num_cost_heads`` cost critics."""

    num_actions: int
    num_cost_heads: int
    #: True when outputs depend on earlier steps of the episode (the buffer then keeps the episode's context).
    recurrent: bool = False
    #: True when some trained parameters get no gradient from the loss (DDP must then look for them).
    has_unused_parameters: bool = False

    @abstractmethod
    def encode(self, raw_observations: Sequence[Any]) -> list[Any]:
        """Turn what the environments returned into what the buffer stores (called without gradients)."""

    @abstractmethod
    def begin_episodes(self, env_slots: Sequence[int], num_slots: int) -> None:
        """New episodes start in ``env_slots`` (of ``num_slots``): forget their recurrent state."""

    @abstractmethod
    def act(self, observations: Sequence[Any], prev_actions: torch.Tensor, episode_steps: torch.Tensor,
            advance: bool = True) -> Heads:
        """One step for every slot (called without gradients).

        ``prev_actions`` (E,) holds -1 at an episode's first step; ``episode_steps`` (E,) counts from 0.
        ``advance=False`` leaves the recurrent state as it was: the rollout's bootstrap values peek at the
        next step, which the next rollout then takes with the updated network.
        """

    @abstractmethod
    def forward(self, segments: Sequence[Segment]) -> Heads:
        """Heads for every own step of ``segments``, concatenated in order, with gradients."""

    def export(self, directory: Path) -> Path | None:
        """Write the trained policy in its deployable format; None when it has none (the toy MLP)."""
        return None
