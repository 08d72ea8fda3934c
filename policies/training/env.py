"""What the rollout workers step: a training environment with a reward and a cost per category.

Plain Python (no torch), so worker processes stay light. Episode seeds are a pure function of
(base seed, rank, environment slot, episode index), so a resumed run replays the same episodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

__all__ = ["EpisodeSummary", "StepOutcome", "TrainingEnv", "episode_seed"]


def episode_seed(base: int, rank: int, slot: int, episode: int) -> int:
    """Seed of one episode: distinct across ranks, slots and episodes, and stable across restarts."""
    return (base * 1_000_003 + rank * 10_007 + slot * 101 + episode * 7_919_993) % (2**31 - 1)


@dataclass(frozen=True)
class EpisodeSummary:
    """A finished episode: return, cost per category, length, success."""

    reward: float
    costs: tuple[float, ...]
    length: int
    success: bool


@dataclass(frozen=True)
class StepOutcome:
    """One step: the next observation (of a new episode when ``done``), reward, costs, and the episode summary."""

    observation: Any
    reward: float
    costs: tuple[float, ...]
    done: bool
    episode: EpisodeSummary | None = None


class TrainingEnv(ABC):
    """A (C)MDP with discrete actions; ``step`` never resets by itself."""

    #: Names of the cost categories, in the order of ``costs``.
    cost_names: tuple[str, ...] = ()
    num_actions: int = 0

    @abstractmethod
    def reset(self, seed: int) -> Any:
        """Start episode ``seed``; returns its first observation."""

    @abstractmethod
    def step(self, action: int) -> tuple[Any, float, tuple[float, ...], bool, bool]:
        """Act; returns (observation, reward, costs, done, success)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources."""
