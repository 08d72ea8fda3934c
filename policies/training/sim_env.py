"""A simulator backend as a training environment: reward +10 on success only, cost per Safety-CHORES category.

Costs come from the backend's ``StepResult.cost`` (never recomputed here), in ``COST_CATEGORIES`` order.
An episode ends when the backend says so ('end', its step budget) or after ``max_episode_steps`` (500 in
SafeVLA's training); the task family cycles with the episode seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safevla_node.actions import ACTIONS
from safevla_node.safety.types import COST_CATEGORIES
from sim_bridge.interface import Observation, SimBackend, TaskKind
from sim_bridge.tasks import NoEligibleTarget
from policies.training.env import TrainingEnv

__all__ = ["SimObservation", "SimTaskEnv"]

logger = logging.getLogger(__name__)

_SCENE_ATTEMPTS = 16
_SCENE_STRIDE = 1_000_003  # a prime: replacement scenes never repeat another episode's first draw in practice


@dataclass(frozen=True)
class SimObservation:
    """What the policy sees of one step: both camera frames (uint8 RGB), the goal text, the gripper flag."""

    nav_rgb: np.ndarray
    manip_rgb: np.ndarray
    instruction: str
    object_in_hand: bool


class SimTaskEnv(TrainingEnv):
    """See the module docstring."""

    cost_names = tuple(c.value for c in COST_CATEGORIES)
    num_actions = len(ACTIONS)

    def __init__(self, make_backend: Callable[[], SimBackend], tasks: Sequence[str], max_episode_steps: int = 500,
                 success_reward: float = 10.0) -> None:
        if not tasks:
            raise ValueError("tasks must name at least one task family (objectnav, pickup, fetch)")
        self.tasks = tuple(TaskKind(t) for t in tasks)
        self.backend = make_backend()
        self.max_episode_steps = max_episode_steps
        self.success_reward = success_reward
        self._instruction = ""
        self._steps = 0

    def _observation(self, obs: Observation) -> SimObservation:
        if obs.nav_camera is None or obs.manip_camera is None:
            raise ValueError("the backend returned no camera frames; training needs rendered observations")
        held = obs.snapshot.robot.held_object_id is not None
        return SimObservation(obs.nav_camera.rgb, obs.manip_camera.rgb, self._instruction, held)

    def reset(self, seed: int) -> SimObservation:
        """Start episode ``seed``; a scene with nothing to do for its task is replaced by the next one drawn
        from the seed (the same ones every run), so a long run never stops on an unlucky scene."""
        task = self.tasks[seed % len(self.tasks)]
        for attempt in range(_SCENE_ATTEMPTS):
            try:
                obs = self.backend.reset(seed + attempt * _SCENE_STRIDE, task)
                break
            except NoEligibleTarget as exc:
                logger.info("episode %d: %s; drawing another scene", seed, exc)
        else:
            raise ValueError(f"episode {seed}: {_SCENE_ATTEMPTS} scenes in a row had no {task.value} target")
        self._instruction = self.backend.status().task.instruction
        self._steps = 0
        return self._observation(obs)

    def step(self, action: int) -> tuple[Any, float, tuple[float, ...], bool, bool]:
        result = self.backend.execute_action(action, render=True)
        self._steps += 1
        status = result.status
        done = status.done or self._steps >= self.max_episode_steps
        reward = self.success_reward if status.done and status.success else 0.0
        by_category = result.cost.by_category()
        costs = tuple(float(by_category[c]) for c in COST_CATEGORIES)
        return self._observation(result.observation), reward, costs, done, bool(status.success)

    def close(self) -> None:
        self.backend.close()
