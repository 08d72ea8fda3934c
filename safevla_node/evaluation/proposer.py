"""An evaluation policy hosted by the simulation bridge, proposing through the safety monitor like a policy
node does: the through-ROS side of in-process / through-ROS parity for the privileged experts (the
through-ROS executor runs checkpoint policies in the real policy node; ``kind: checkpoint`` here remains
for a bridge used on its own).

In-process evaluation (``runner.InProcessExecutor``) asks the policy adapter for an action, judges it with
``shielding.shielded_action`` and executes the result. Through ROS the same adapter (``policies.make_policy``,
so the expert and the noisy expert, which plan on the simulator's privileged scene, and checkpoints alike)
runs inside the bridge process, publishes its proposal on ``safevla/action_proposal`` and learns the safety
monitor's decision from ``safevla/primitive_status``; the bridge executes what the monitor let through
(``action_execution: discrete``). ``BridgeProposer`` is the plain-Python state machine of that loop:

1. ``poll``: once the monitor has acknowledged the episode reset (its IDLE status: it has cleared the old
   episode, and its statuses reach the bridge; one published before DDS discovery matched the bridge's reader
   would be lost, and the proposal with it), ``settle_s`` of sim time after the reset (so the monitor has
   taken the new episode's sensors first), and after each step has ended, propose one action on the latest
   observation, unless the episode is done or its step budget is spent.
2. ``on_status``: the first status of a new proposal id naming our action is the monitor's decision:
   RUNNING (the executed action, the shield's replacement if it replaced) or ABORTED (refused: the step is
   spent standing still). The adapter hears what ran (``EvalPolicy.executed``) before the bridge executes
   it, in the order ``InProcessExecutor`` uses, and the verdict is counted as an intervention.
3. An executed action's step ends when the monitor reports its primitive DONE or ABORTED: the monitor has
   then taken the post-step odometry, so the next proposal is judged in the post-step world.

One proposal per step, each on the observation taken after the previous step: the policy acts exactly
once per step, never on a stale frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from safevla_node.config import check_range, field
from safevla_node.errors import ConfigError
from safevla_node.evaluation.planning_margins import PlanningMargins
from safevla_node.evaluation.policies import EvalPolicy, make_policy
from safevla_node.evaluation.suite import PolicySpec
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import DiscreteCommand, VerdictKind
from sim_bridge.interface import EpisodeStatus, Observation, SimBackend, TaskSpec

__all__ = ["PROPOSER_KINDS", "BridgeProposer", "ProposerConfig"]

_log = logging.getLogger(__name__)

PROPOSER_KINDS = ("none", "expert", "noisy_expert", "checkpoint")


@dataclass(frozen=True)
class ProposerConfig:
    """The policy a simulation bridge runs itself (``sim_bridge`` parameters ``proposer.*``)."""

    kind: str = field(
        "none", "policy the bridge runs itself, proposing on safevla/action_proposal (needs action_execution "
        "discrete): none, expert, noisy_expert or checkpoint")
    noise: float = field(0.0, "noisy_expert: probability of a random (non-ending) action at each step")
    checkpoint: str = field("", "checkpoint: a path (our directory, .pt or .ckpt) or 'shipped'")
    device: str = field("cpu", "checkpoint: torch device (cpu, cuda, auto)")
    margins: PlanningMargins = field(
        PlanningMargins(), "expert, noisy_expert: the shield margins they plan around (the safety monitor's)")
    step_budget: int = field(0, "propose for at most this many steps per episode (0: the task's own budget)")
    settle_s: float = field(
        0.3, "sim time after an episode reset before the first proposal (s), so the safety monitor has taken "
        "the new episode's sensors")

    def __post_init__(self) -> None:
        if self.kind not in PROPOSER_KINDS:
            raise ConfigError(f"proposer.kind={self.kind!r} is not one of {list(PROPOSER_KINDS)}")
        check_range("proposer.step_budget", self.step_budget, 0, 10_000)
        check_range("proposer.settle_s", self.settle_s, 0.0, 60.0)
        self.policy_spec()  # the policy's own rules (noise only for noisy_expert, a checkpoint path, ...)

    def policy_spec(self) -> PolicySpec | None:
        """The evaluation policy this config names (None for kind none).

        Raises:
            ConfigError: the fields do not describe a valid policy (naming the field).
        """
        if self.kind == "none":
            return None
        return PolicySpec(name=self.kind, kind=self.kind, noise=self.noise,  # type: ignore[arg-type]
                          checkpoint=self.checkpoint, device=self.device)


@dataclass
class _Pending:
    action: int
    status_id_before: int | None
    decided_id: int | None = None


class BridgeProposer:
    """Runs one policy adapter step by step against the monitor's decisions (see the module docstring).

    Adapters are built once per policy and kept for the proposer's lifetime, as ``InProcessExecutor`` does.
    """

    def __init__(self) -> None:
        self._policies: dict[tuple[PolicySpec, PlanningMargins], EvalPolicy] = {}
        self._policy: EvalPolicy | None = None
        self._budget = 0
        self._ready_at = math.inf
        self._pending: _Pending | None = None
        self._last_status_id: int | None = None
        self._acknowledged = False
        self.interventions: dict[VerdictKind, int] = dict.fromkeys(VerdictKind, 0)

    @property
    def active(self) -> bool:
        """A policy runs in the current episode."""
        return self._policy is not None

    @property
    def acknowledged(self) -> bool:
        """The monitor acknowledged the latest reset (tracked whether a policy runs or not)."""
        return self._acknowledged

    def reset(self, config: ProposerConfig, backend: SimBackend, task: TaskSpec, seed: int, now: float) -> None:
        """Start an episode that ``backend`` has just loaded; ``seed`` seeds the policy as in-process.

        Raises:
            PolicyLoadError: a checkpoint that is missing or does not load.
        """
        self._pending = None
        self._acknowledged = False
        self.interventions = dict.fromkeys(VerdictKind, 0)
        spec = config.policy_spec()
        if spec is None:
            self._policy = None
            return
        key = (spec, config.margins)
        if key not in self._policies:
            self._policies[key] = make_policy(spec, backend, config.margins)
        self._policy = self._policies[key]
        self._policy.reset(task, seed)
        self._budget = min(config.step_budget or task.max_steps, task.max_steps)
        self._ready_at = now + config.settle_s

    def poll(self, now: float, observation: Observation, status: EpisodeStatus) -> DiscreteCommand | None:
        """The proposal to publish now, if any (see the module docstring, rule 1)."""
        policy = self._policy
        if (policy is None or not self._acknowledged or self._pending is not None or now < self._ready_at
                or status.done or status.steps >= self._budget):
            return None
        action, probabilities = policy.act(observation)
        self._pending = _Pending(int(action), self._last_status_id)
        probs = None if probabilities is None else tuple(float(p) for p in probabilities)
        return DiscreteCommand(int(action), probs)

    def on_status(self, status: PrimitiveStatus) -> None:
        """A status from the monitor: the acknowledgement of a reset (IDLE), our proposal's decision, or the
        end of its primitive."""
        if status.phase is PrimitivePhase.IDLE:
            self._acknowledged = True
            return
        pending = self._pending
        new_id = status.proposal_id != self._last_status_id
        self._last_status_id = status.proposal_id
        if pending is None or self._policy is None:
            return
        if pending.decided_id is None:
            if not (new_id and status.proposal_id != pending.status_id_before and status.action == pending.action):
                return
            self._decide(status)
            return
        if status.proposal_id == pending.decided_id and status.phase in (PrimitivePhase.DONE,
                                                                          PrimitivePhase.ABORTED):
            self._pending = None

    def _decide(self, status: PrimitiveStatus) -> None:
        assert self._pending is not None and self._policy is not None
        if status.verdict:
            self.interventions[VerdictKind[status.verdict.upper()]] += 1
        if status.phase is PrimitivePhase.ABORTED:  # refused: the step is spent standing still
            self._policy.executed(None)
            self._pending = None
            return
        self._policy.executed(status.executed)
        self._pending.decided_id = status.proposal_id
        if status.phase is PrimitivePhase.DONE:
            self._pending = None

    def intervention_counts(self) -> dict[str, int]:
        """Shield interventions of the episode so far, as ``EpisodeRecord`` counts them."""
        i = self.interventions
        return {"limits": i[VerdictKind.LIMIT], "replacements": i[VerdictKind.REPLACE],
                "stops": i[VerdictKind.STOP]}
