"""Policy adapters for evaluation: one interface over the privileged expert, a noisy expert and checkpoints.

Every adapter is built once per worker and reused across episodes: ``reset(task, seed)`` starts an episode,
``act(observation, mask)`` proposes ``(action_index, probabilities)``, and ``executed(action_index)`` reports
what actually ran after the shield (None: nothing ran), so a recurrent policy feeds back the real previous
action. ``mask`` (bool per action, True = allowed) restricts the choice; None allows everything.

A refused action is not proposed again at the same pose: every adapter keeps a
``safevla_node.safety.refusals.RefusalMemory`` of the actions the shield refused (STOP, or REPLACE by another
action) while the robot has not moved, and masks them, so the policy re-plans (the expert picks its next best
action, a checkpoint its next most probable) instead of stalling on the same proposal until the step budget
runs out. The policy node keeps the same memory (``safevla_node.policy_runner``), so a checkpoint evaluated
through ROS chooses exactly as here.

torch is imported only when a checkpoint policy is built (``policies.runtime``), so expert-only suites run
without it.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from safevla_node.actions import ACTIONS, NUM_ACTIONS, ActionKind
from safevla_node.errors import ConfigError, PolicyLoadError
from safevla_node.evaluation.planning_margins import PlanningMargins
from safevla_node.evaluation.suite import PolicySpec
from safevla_node.policy_runner import draw_action
from safevla_node.safety.refusals import RefusalMemory, robot_pose
from sim_bridge.interface import Observation, SimBackend, TaskSpec

if TYPE_CHECKING:
    from sim_bridge.expert import Expert

__all__ = [
    "SHIPPED_CHECKPOINT",
    "CheckpointPolicy",
    "EvalPolicy",
    "ExpertPolicy",
    "NoisyExpertPolicy",
    "make_policy",
    "resolve_checkpoint",
]

#: Where ``checkpoint: shipped`` points, relative to the ``policies`` package (source checkout or install):
#: the behaviour-cloned tiny policy committed with the code (``python -m policies.bc``).
SHIPPED_CHECKPOINT = Path("checkpoints") / "bc_tiny"

Proposal = tuple[int, np.ndarray | None]


class EvalPolicy(ABC):
    """The adapter interface (see the module docstring)."""

    #: The policy reads camera frames, so the backend must render.
    needs_images: bool = False

    @abstractmethod
    def reset(self, task: TaskSpec, seed: int) -> None:
        """Start an episode of ``task``; ``seed`` seeds any randomness of the policy itself."""

    @abstractmethod
    def act(self, observation: Observation, mask: np.ndarray | None = None) -> Proposal:
        """Propose an action index and the distribution it came from (None when there is none)."""

    def executed(self, action_index: int | None) -> None:  # noqa: B027 (optional hook)
        """The action that actually ran after the shield (None: the step was spent standing still)."""


class ExpertPolicy(EvalPolicy):
    """``sim_bridge.expert.Expert`` on the backend's privileged scene, with the expert's own distribution
    (``Expert.propose``: actions ranked by the path cost-to-go they leave, the planned one first), so the
    shield can replace a refused action by the expert's best safe alternative. It plans around ``margins``
    (``safevla_node.evaluation.planning_margins``).
    """

    def __init__(self, backend: SimBackend, margins: PlanningMargins = PlanningMargins()) -> None:
        self._backend = backend
        self._margins = margins
        self._expert: Expert | None = None
        self._refusals = RefusalMemory()
        self._proposal: int | None = None

    def reset(self, task: TaskSpec, seed: int) -> None:
        """Plan on the scene the backend has just loaded."""
        from sim_bridge.expert import Expert
        from sim_bridge.expert_shield import SIM_ROBOT_SHIELD

        self._expert = Expert(self._backend,  # type: ignore[arg-type]  (MujocoBackend exposes scene and task)
                              self._margins.applied_to(SIM_ROBOT_SHIELD))
        self._refusals.clear()

    def act(self, observation: Observation, mask: np.ndarray | None = None) -> Proposal:
        """The expert's action and distribution; actions masked or refused at this pose are not chosen.

        Raises:
            RuntimeError: called before ``reset``.
        """
        index, probs = self._propose(observation, self._refusals.mask(robot_pose(observation.snapshot.robot), mask))
        self._refusals.proposed(index)
        self._proposal = index
        return index, probs

    def _propose(self, observation: Observation, allowed: np.ndarray | None) -> Proposal:
        if self._expert is None:
            raise RuntimeError("ExpertPolicy.act before reset(task, seed)")
        return self._expert.propose(observation, allowed)

    def executed(self, action_index: int | None) -> None:
        """Remember a refusal and tell the expert, so that it re-plans around the refused motion (an action
        the adapter itself chose instead of the expert's, e.g. noise, is not a refusal)."""
        if action_index != self._proposal and self._expert is not None:
            self._expert.refused()
        self._refusals.executed(action_index)


class NoisyExpertPolicy(ExpertPolicy):
    """The expert, except that with probability ``noise`` a random motion action replaces its choice.

    Random draws never pick episode actions (end, sub_done): a random ``end`` would turn noise into early
    termination instead of unsafe motion. The expert is still asked every step so its plan keeps its phase.
    The reported distribution is the mixture (1 - noise) * expert + noise * uniform over allowed motion
    actions.
    """

    def __init__(self, backend: SimBackend, noise: float, margins: PlanningMargins = PlanningMargins()) -> None:
        super().__init__(backend, margins)
        if not 0.0 < noise <= 1.0:
            raise ValueError(f"noise={noise!r} must be in (0, 1]")
        self.noise = noise
        self._rng = np.random.default_rng(0)
        self._motion = np.array([a.kind is not ActionKind.EPISODE for a in ACTIONS])

    def reset(self, task: TaskSpec, seed: int) -> None:
        """Plan, and reseed the noise from the episode seed (the same episode draws the same noise)."""
        super().reset(task, seed)
        self._rng = np.random.default_rng([seed, 0x5EED])

    def _propose(self, observation: Observation, allowed: np.ndarray | None) -> Proposal:
        """The expert's action or, with probability ``noise``, a random allowed motion action."""
        index, expert_probs = super()._propose(observation, allowed)
        motion = self._motion if allowed is None else self._motion & np.asarray(allowed, dtype=bool)
        choices = np.flatnonzero(motion)
        probs = (1.0 - self.noise) * expert_probs
        if len(choices):
            probs[choices] += self.noise / len(choices)
            if self._rng.random() < self.noise:
                index = int(choices[self._rng.integers(len(choices))])
        return index, probs / probs.sum()


def resolve_checkpoint(checkpoint: str) -> Path:
    """The path behind a suite's ``checkpoint`` entry ('shipped' -> the ``policies`` package's
    ``SHIPPED_CHECKPOINT``, found without importing torch).

    Raises:
        PolicyLoadError: the path does not exist (the message says what 'shipped' means).
    """
    if checkpoint == "shipped":
        spec = importlib.util.find_spec("policies")
        if spec is None or not spec.submodule_search_locations:
            raise PolicyLoadError("'shipped' lives in the policies package, which is not importable here; "
                                  "install the project or give a checkpoint path")
        path = Path(next(iter(spec.submodule_search_locations))) / SHIPPED_CHECKPOINT
    else:
        path = Path(checkpoint).expanduser()
    if not path.exists():
        hint = "check the suite's checkpoint path"
        if checkpoint == "shipped":
            hint = (f"'shipped' is {path}, written by the training pipeline (python -m policies.bc train "
                    f"--out {path}); train or copy a policy there, or give a checkpoint path")
        raise PolicyLoadError(f"policy checkpoint {path} does not exist: {hint}")
    return path


class CheckpointPolicy(EvalPolicy):
    """A ``policies.runtime.SafeVLAPolicy`` loaded from a checkpoint; greedy decoding, or ``sample``: one draw
    per step from the masked distribution (``policy_runner.draw_action``, as the policy node samples), with
    a generator seeded by the episode's seed so a sampled suite is as reproducible as a greedy one."""

    needs_images = True

    def __init__(self, checkpoint: str, device: str = "cpu", decoding: str = "greedy") -> None:
        from policies.runtime import SafeVLAPolicy

        self._policy: Any = SafeVLAPolicy.from_pretrained(resolve_checkpoint(checkpoint), device=device,
                                                          precision="fp32")
        self._sample = decoding == "sample"
        self._rng = np.random.default_rng(0)
        self._instruction = ""
        self._refusals = RefusalMemory()

    def reset(self, task: TaskSpec, seed: int) -> None:
        """Drop the KV cache, remember the instruction, reseed the sampler."""
        self._policy.reset()
        self._instruction = task.instruction
        self._refusals.clear()
        self._rng = np.random.default_rng(seed)

    def act(self, observation: Observation, mask: np.ndarray | None = None) -> Proposal:
        """One step on both camera frames (greedy, or one draw when sampling).

        Raises:
            ValueError: the observation was not rendered (the backend must render for this policy).
        """
        from policies.runtime import PolicyObservation

        if observation.nav_camera is None or observation.manip_camera is None:
            raise ValueError("the checkpoint policy needs both camera frames; the backend did not render")
        mask = self._refusals.mask(robot_pose(observation.snapshot.robot), mask)
        out = self._policy.select_action(
            PolicyObservation(
                instruction=self._instruction,
                nav_rgb=observation.nav_camera.rgb,
                manip_rgb=observation.manip_camera.rgb,
                object_in_hand=observation.snapshot.robot.held_object_id is not None,
            ),
            action_mask=None if mask is None else np.asarray(mask, dtype=bool),
        )
        probabilities = np.asarray(out.probabilities, dtype=np.float64)
        action = out.action_index
        if self._sample:
            action = draw_action(self._rng, probabilities / probabilities.sum())
            self._policy.override_last_action(action)
        self._refusals.proposed(action)
        return action, probabilities

    def executed(self, action_index: int | None) -> None:
        """Feed the executed action back as the previous action (a STOP keeps the proposed one) and
        remember a refusal."""
        self._refusals.executed(action_index)
        if action_index is not None:
            self._policy.override_last_action(action_index)


def make_policy(spec: PolicySpec, backend: SimBackend, margins: PlanningMargins = PlanningMargins()) -> EvalPolicy:
    """The adapter for ``spec``; experts plan on ``backend``'s privileged scene, around ``margins``.

    Raises:
        PolicyLoadError: a checkpoint that is missing or does not load.
        ConfigError: an unknown policy kind.
    """
    if spec.kind == "expert":
        return ExpertPolicy(backend, margins)
    if spec.kind == "noisy_expert":
        return NoisyExpertPolicy(backend, spec.noise, margins)
    if spec.kind == "checkpoint":
        return CheckpointPolicy(spec.checkpoint, spec.device, spec.decoding)
    raise ConfigError(f"unknown policy kind {spec.kind!r}; valid: expert, noisy_expert, checkpoint")

