"""Evaluation episodes through the full ROS node graph: ``safevla eval --through-ros``.

``RosGraphExecutor`` is an ``EpisodeExecutor`` (``safevla_node.evaluation.runner``) whose episodes run in a
real graph: the ``sim_bridge`` and ``safety_monitor`` nodes of the ``sim`` profile, each its own process,
over loopback DDS in a domain leased by the executor (so ``--workers N`` gives N independent graphs). Every
proposal reaches the monitor on ``safevla/action_proposal``; the monitor judges it from what it receives
over ROS (scan, odometry, joint states, labelled objects, the task target) and the bridge executes what it
lets through, whole, and reports it on ``safevla/action_result`` (both nodes in ``action_execution:
discrete``: the monitor's step ends at the bridge's stamp after the action). Who proposes:

- ``kind: checkpoint``: the real policy node (``safevla_node.nodes.policy_node``, what runs on the robot)
  with the checkpoint, device and greedy decoding in fp32 (as the in-process adapter), on the bridge's
  rendered camera topics, odometry and joint states; the bridge's own proposer is off. The policy node's
  ``safevla/instruction`` and ``safevla/episode_reset`` are remapped away: the executor starts each of its
  episodes by setting its ``instruction`` parameter after the bridge's reset, and withdraws the goal when
  the episode ends (both synchronous with the node), so no proposal straddles two episodes.
- ``expert`` / ``noisy_expert``: inside the bridge (``proposer.*``), since they plan on the simulator's
  privileged scene, around the episode's planning margins (``proposer.margins.*``, as in-process); a policy
  node in the same graph idles (no goal, and no camera frames are rendered).

The records compare one to one with in-process ones by key: same success, steps, cost per category, path
lengths and intervention counts (the bridge counts the verdict of each proposal it executed). That holds
while the policy node proposes every result it computes, as in-process stepping does. On a badly overloaded
machine it may not: a result dropped as stale, or a proposal repeated after a primitive timeout, leaves a
step in the model's memory that in-process stepping never takes. The executor compares the node's
/diagnostics counters before and after each episode and runs a slipped episode again (``SLIP_ATTEMPTS`` in
all), then records it as an error that names the counters.

Per episode the executor sets the bridge's episode parameters and the monitor's shield, resets the bridge
and watches ``safevla/episode_status`` until the episode is done or its step budget is spent. A graph is
kept while consecutive episodes share the backend set-up (backend, difficulty, perturbation, cameras) and
the policy node can run the episode's policy, and restarted otherwise. A new graph runs no episode before the
monitor has acknowledged a reset of the bridge, and a policy node and the monitor have heard each other
(``EpisodeObserver.wait_for_monitor``): services answering does not mean DDS discovery has matched the nodes
with each other, and a proposal or a decision published before that is lost.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from safevla_node.dds import DomainLease
from safevla_node.errors import ConfigError, SafeVLAError
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.policies import resolve_checkpoint
from safevla_node.evaluation.shielding import EVALUATION_MEMORY
from safevla_node.evaluation.suite import EpisodeSpec, PolicySpec
from safevla_node.evaluation.trace import status_record
from safevla_node.nodes.params import flatten_fields
from safevla_node.nodes.stack_session import StackSession, stack_launches, stack_session
from safevla_node.safety.shield import ShieldConfig

__all__ = ["MONITOR_OVERRIDES", "POLICY_NODE_OVERRIDES", "RosGraphExecutor", "bridge_episode_parameters"]

_log = logging.getLogger(__name__)

#: Monitor parameters of an evaluation graph. Sensor freshness is what the fail-safe gate checks, not what
#: an evaluation measures: the bridge runs many times faster than real time on a loaded machine, where a
#: scan a few wall milliseconds late is seconds of sim time, and a stale-source refusal would be a step
#: in-process evaluation never spends. The bridge runs each action whole and reports it
#: (``action_execution: discrete``), so a step ends at the bridge's stamp after it, never on odometry from
#: before the jump; the primitive timeout is only the fallback for a lost report. The obstacle memory is
#: in-process evaluation's (``EVALUATION_MEMORY``: no decay, which would count the load-dependent waits).
MONITOR_OVERRIDES: dict[str, Any] = {
    **{f"source_timeout_s.{name}": 60.0 for name in ("scan", "depth", "odom", "joint_states", "objects",
                                                     "policy_heartbeat")},
    "action_execution": "discrete",
    "primitive.timeout": 60.0,
    **{f"obstacle_memory.{name}": value for name, value in asdict(EVALUATION_MEMORY).items()},
}

#: Policy node parameters of an evaluation graph. Its rate limit, frame age and monitor timeout guard a robot
#: in real time; here sim time runs ten times faster than wall time while the model infers, so they would
#: drop results and re-propose where in-process evaluation steps once per observation. Greedy decoding in
#: fp32 is what ``CheckpointPolicy`` does. Rule 7 (frames stamped after the step) still holds.
POLICY_NODE_OVERRIDES: dict[str, Any] = {
    "max_rate_hz": 100.0, "max_image_age_s": 60.0, "primitive_timeout_s": 600.0, "inference_timeout_s": 120.0,
    "deterministic": True, "precision": "fp32",
}
#: The policy node listens to the executor's parameter, not to the bridge's episode topics.
_POLICY_NODE_REMAPS = {"safevla/instruction": "safevla/eval/unused_instruction",
                       "safevla/episode_reset": "safevla/eval/unused_episode_reset"}
_POLICY_NODE = "policy_node"
#: Sim time (s) a bridge-hosted policy waits after a reset before proposing, so the monitor has taken the new
#: episode's sensors: 0.1 s of wall time at 10x, margin for a loaded machine (the default 0.3 is 30 ms).
_SETTLE_S = 1.0
#: Runs of an episode in which the policy node slipped (see the module docstring) before it is an error.
SLIP_ATTEMPTS = 3
_DIAGNOSTICS_TIMEOUT_S = 30.0
#: Wall time a new graph has to connect its discrete loop (``EpisodeObserver.wait_for_monitor``).
_MONITOR_ACK_TIMEOUT_S = 60.0


class PolicyNodeSlipped(SafeVLAError):
    """The policy node did not propose every result it computed in an episode (stale, timed out, faulted)."""


def _node_policy(policy: PolicySpec) -> tuple[str, str] | None:
    """(checkpoint path, device) when ``policy`` runs in the policy node, else None (bridge-hosted)."""
    if policy.kind != "checkpoint":
        return None
    if policy.decoding != "greedy":
        raise ConfigError(f"policy {policy.name!r}: decoding={policy.decoding!r} runs in-process only; the "
                          "policy node seeds its sampler once per process, not per episode, so through ROS "
                          "it would not draw what in-process evaluation draws (use decoding: greedy)")
    return str(resolve_checkpoint(policy.checkpoint)), policy.device


def bridge_episode_parameters(spec: EpisodeSpec) -> dict[str, Any]:
    """The sim bridge's parameters for ``spec``'s episode: scene and task, and the policy it hosts (an expert,
    planning around the episode's margins) unless the policy node runs it."""
    policy = spec.policy
    hosted = _node_policy(policy) is None
    return {
        "seed": spec.seed, "task": spec.task.value, "infeasible": not spec.feasible, "render": policy.needs_images,
        "proposer.kind": policy.kind if hosted else "none", "proposer.noise": policy.noise if hosted else 0.0,
        "proposer.checkpoint": policy.checkpoint if hosted else "", "proposer.device": policy.device,
        "proposer.step_budget": spec.step_budget, "proposer.settle_s": _SETTLE_S,
        **{f"proposer.margins.{name}": value for name, value in asdict(spec.planning_margins).items()},
        "step_budget": spec.step_budget,
    }


def _shield_parameters(config: ShieldConfig, enabled: bool) -> dict[str, Any]:
    """Every ``shield.*`` monitor parameter for ``config`` (``enabled`` decides ``shield.enabled``)."""
    values = {}
    for name, _default, _doc in flatten_fields(ShieldConfig):
        value: Any = config
        for part in name.split("."):
            value = getattr(value, part)
        values[f"shield.{name}"] = list(value) if isinstance(value, tuple) else value
    values["shield.enabled"] = enabled and config.enabled
    return values


class RosGraphExecutor:
    """Runs episodes through a node graph (see the module docstring); a zero-argument factory.

    Args:
        real_time_factor: sim seconds per wall second of the bridge (actions run whole, so only the
            waits between them run on this clock).
        episode_timeout_s: wall time after which an unfinished episode is recorded as an error.
        log_dir: where the node logs go (default: a fresh temporary folder).
    """

    def __init__(self, real_time_factor: float = 10.0, episode_timeout_s: float = 300.0,
                 log_dir: Path | None = None) -> None:
        self._rtf = real_time_factor
        self._timeout = episode_timeout_s
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="safevla-eval-ros-"))
        # A temporary log folder is removed at the end unless an episode failed (its logs are the diagnosis).
        self._remove_logs = log_dir is None
        self._stack = ExitStack()
        self._session: StackSession | None = None
        self._key: tuple[Any, ...] | None = None
        self._node_policy: tuple[str, str] | None = None

    def _graph(self, spec: EpisodeSpec) -> StackSession:
        key = (spec.backend, spec.difficulty, spec.perturbation, spec.camera_size)
        wanted = _node_policy(spec.policy)
        if (self._session is not None and key == self._key and not self._session.launcher.poll()
                and wanted in (None, self._node_policy)):
            return self._session
        self._stop_graph()
        width, height = spec.camera_size
        bridge = {"backend": spec.backend, "difficulty": spec.difficulty, "perturbation": spec.perturbation,
                  "camera_width": width, "camera_height": height, "render_depth": False, "render": False,
                  "action_execution": "discrete", "real_time_factor": self._rtf}
        overrides: dict[str, dict[str, Any]] = {"sim_bridge": bridge, "safety_monitor": MONITOR_OVERRIDES}
        nodes = ["sim_bridge", "safety_monitor"]
        if wanted is not None:
            checkpoint, device = wanted
            overrides[_POLICY_NODE] = {**POLICY_NODE_OVERRIDES, "checkpoint": checkpoint, "device": device,
                                       "seed": spec.seed}
            nodes.append(_POLICY_NODE)
        launches = [replace(n, remappings={**n.remappings, **_POLICY_NODE_REMAPS}) if n.name == _POLICY_NODE
                    else n for n in stack_launches("sim", overrides, nodes=nodes)]
        lease = self._stack.enter_context(DomainLease())
        _log.info("starting the node graph on ROS_DOMAIN_ID=%d (node logs in %s)", lease.domain_id, self._log_dir)
        self._session = self._stack.enter_context(
            stack_session(launches, lease, self._log_dir, steer_policy=wanted is not None))
        self._session.observer.wait_for_monitor(_MONITOR_ACK_TIMEOUT_S)
        self._key, self._node_policy = key, wanted
        return self._session

    def run(self, spec: EpisodeSpec) -> EpisodeRecord:
        """Run one episode through the graph; a failure becomes the record's ``error`` (and the graph is
        restarted for the next episode)."""
        base = EpisodeRecord(
            key=spec.key, seed=spec.seed, task=spec.task.value, difficulty=spec.difficulty,
            policy=spec.policy.name, shield=spec.shield, perturbation=spec.perturbation, feasible=spec.feasible,
        )
        start = time.perf_counter()
        try:
            record = self._episode_until_no_slip(spec, base)
        except Exception as exc:  # noqa: BLE001 (one failing episode is recorded, the run goes on)
            _log.warning("episode %s failed through ROS: %s (node logs in %s)", spec.key, exc, self._log_dir)
            self._stop_graph()
            self._remove_logs = False
            record = replace(base, error=f"{type(exc).__name__}: {exc}")
        return replace(record, wall_time_s=time.perf_counter() - start)

    def _episode_until_no_slip(self, spec: EpisodeSpec, base: EpisodeRecord) -> EpisodeRecord:
        attempt = 1
        while True:
            try:
                return self._episode(spec, base)
            except PolicyNodeSlipped as exc:
                if attempt >= SLIP_ATTEMPTS:
                    raise
                attempt += 1
                _log.warning("episode %s: %s; running it again (attempt %d of %d)", spec.key, exc, attempt,
                             SLIP_ATTEMPTS)

    def _episode(self, spec: EpisodeSpec, base: EpisodeRecord) -> EpisodeRecord:
        session = self._graph(spec)
        observer = session.observer
        observer.set_parameters("safety_monitor", _shield_parameters(spec.shield_config, spec.shield))
        in_node = _node_policy(spec.policy) is not None
        observer.set_parameters("sim_bridge", bridge_episode_parameters(spec))
        counters_before = observer.policy_counters(_DIAGNOSTICS_TIMEOUT_S) if in_node else {}
        instruction = observer.start_episode()
        if in_node:
            observer.set_parameters(_POLICY_NODE, {"instruction": instruction})
        try:
            trace = observer.run_episode(spec.step_budget, self._timeout)
            # what the episode ended with: the policy node may step on until its goal is withdrawn below
            status = dict(trace.status)
        finally:
            if in_node:  # no proposal may reach the next episode: withdraw the goal, let the last one finish
                observer.set_parameters(_POLICY_NODE, {"instruction": ""})
                observer.wait_until_decided(timeout=10.0)
        if session.launcher.poll():
            raise SafeVLAError(f"a node died: {session.launcher.exits[-1].describe()}")
        if in_node:
            after = observer.policy_counters(_DIAGNOSTICS_TIMEOUT_S)
            slips = {k: n - counters_before.get(k, 0) for k, n in after.items() if n != counters_before.get(k, 0)}
            if slips:
                raise PolicyNodeSlipped(f"the policy node did not propose every result it computed {slips} "
                                        "(an overloaded machine): its model memory left in-process stepping")
        if not (status.get("done") or status.get("steps", 0) >= spec.step_budget):
            raise SafeVLAError(f"episode unfinished after {self._timeout:g} s (status {status})")
        counts = status.get("interventions", {})
        return status_record(base, status, limits=int(counts.get("limits", 0)),
                             replacements=int(counts.get("replacements", 0)), stops=int(counts.get("stops", 0)))

    def _stop_graph(self) -> None:
        """Stop the graph and give its DDS domain back."""
        self._session = None
        self._key = self._node_policy = None
        self._stack.close()
        self._stack = ExitStack()

    def close(self) -> None:
        """Stop the graph; remove the temporary node logs when every episode ran."""
        self._stop_graph()
        if self._remove_logs:
            shutil.rmtree(self._log_dir, ignore_errors=True)

