"""Evaluation episodes through the full ROS node graph: ``safevla eval --through-ros``.

``RosGraphExecutor`` is an ``EpisodeExecutor`` (``safevla_node.evaluation.runner``) whose episodes run in a
real graph: the ``sim_bridge`` and ``safety_monitor`` nodes of the ``sim`` profile, each its own process,
over loopback DDS in a domain leased by the executor (so ``--workers N`` gives N independent graphs). The
policy under evaluation runs inside the bridge (``proposer.*``: the same adapter as in-process, so the
privileged experts work too), proposes on ``safevla/action_proposal``, and the safety monitor judges every
proposal from what it receives over ROS (scan, odometry, joint states, labelled objects, the task target)
before the bridge executes it whole (``action_execution: discrete``). The records compare one to one with
in-process ones by key: same success, steps, cost per category, path lengths and intervention counts.

Per episode the executor sets the bridge's episode parameters and the monitor's shield, resets the bridge
and watches ``safevla/episode_status`` until the episode is done or its step budget is spent. A graph is
kept while consecutive episodes share the backend set-up (backend, difficulty, perturbation, cameras), and
restarted otherwise.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from safevla_node.dds import DomainLease
from safevla_node.errors import SafeVLAError
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.suite import EpisodeSpec
from safevla_node.evaluation.trace import status_record
from safevla_node.nodes.params import flatten_fields
from safevla_node.nodes.stack_session import StackSession, stack_launches, stack_session
from safevla_node.safety.shield import ShieldConfig

__all__ = ["MONITOR_OVERRIDES", "RosGraphExecutor"]

_log = logging.getLogger(__name__)

#: Monitor parameters of an evaluation graph. Sensor freshness is what the fail-safe gate checks, not what
#: an evaluation measures: the bridge runs many times faster than real time on a loaded machine, where a
#: scan a few wall milliseconds late is seconds of sim time, and a stale-source refusal would be a step
#: in-process evaluation never spends. A primitive of a whole action sees its goal at once; one that does
#: not (the backend stopped short at an obstacle) ends after a second of sim time instead of five.
MONITOR_OVERRIDES: dict[str, Any] = {
    **{f"source_timeout_s.{name}": 60.0 for name in ("scan", "depth", "odom", "joint_states", "objects")},
    "primitive.timeout": 1.0,
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

    def _graph(self, spec: EpisodeSpec) -> StackSession:
        key = (spec.backend, spec.difficulty, spec.perturbation, spec.camera_size)
        if self._session is not None and key == self._key and not self._session.launcher.poll():
            return self._session
        self._stop_graph()
        width, height = spec.camera_size
        bridge = {"backend": spec.backend, "difficulty": spec.difficulty, "perturbation": spec.perturbation,
                  "camera_width": width, "camera_height": height, "render_depth": False, "render": False,
                  "action_execution": "discrete", "real_time_factor": self._rtf}
        launches = stack_launches("sim", {"sim_bridge": bridge, "safety_monitor": MONITOR_OVERRIDES},
                                  nodes=("sim_bridge", "safety_monitor"))
        lease = self._stack.enter_context(DomainLease())
        _log.info("starting the node graph on ROS_DOMAIN_ID=%d (node logs in %s)", lease.domain_id, self._log_dir)
        self._session = self._stack.enter_context(stack_session(launches, lease, self._log_dir))
        self._key = key
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
            record = self._episode(spec, base)
        except Exception as exc:  # noqa: BLE001 (one failing episode is recorded, the run goes on)
            _log.warning("episode %s failed through ROS: %s (node logs in %s)", spec.key, exc, self._log_dir)
            self._stop_graph()
            self._remove_logs = False
            record = replace(base, error=f"{type(exc).__name__}: {exc}")
        return replace(record, wall_time_s=time.perf_counter() - start)

    def _episode(self, spec: EpisodeSpec, base: EpisodeRecord) -> EpisodeRecord:
        session = self._graph(spec)
        observer = session.observer
        observer.set_parameters("safety_monitor", _shield_parameters(spec.shield_config, spec.shield))
        policy = spec.policy
        observer.set_parameters("sim_bridge", {
            "seed": spec.seed, "task": spec.task.value, "infeasible": not spec.feasible,
            "render": policy.needs_images, "proposer.kind": policy.kind, "proposer.noise": policy.noise,
            "proposer.checkpoint": policy.checkpoint, "proposer.device": policy.device,
            "proposer.step_budget": spec.step_budget,
        })
        observer.start_episode()
        trace = observer.run_episode(spec.step_budget, self._timeout)
        status = trace.status
        if session.launcher.poll():
            raise SafeVLAError(f"a node died: {session.launcher.exits[-1].describe()}")
        if not (status.get("done") or status.get("steps", 0) >= spec.step_budget):
            raise SafeVLAError(f"episode unfinished after {self._timeout:g} s (status {status})")
        counts = status.get("interventions", {})
        return status_record(base, status, limits=int(counts.get("limits", 0)),
                             replacements=int(counts.get("replacements", 0)), stops=int(counts.get("stops", 0)))

    def _stop_graph(self) -> None:
        """Stop the graph and give its DDS domain back."""
        self._session = None
        self._key = None
        self._stack.close()
        self._stack = ExitStack()

    def close(self) -> None:
        """Stop the graph; remove the temporary node logs when every episode ran."""
        self._stop_graph()
        if self._remove_logs:
            shutil.rmtree(self._log_dir, ignore_errors=True)

