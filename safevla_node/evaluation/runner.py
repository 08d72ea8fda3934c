"""Run a suite: in-process or across worker processes, resumable, one JSON line per finished episode.

Layout of a results folder::

    suite.json       the suite definition the folder belongs to (a different suite is refused)
    episodes.jsonl   one ``EpisodeRecord`` per line, appended and flushed as each episode finishes
    .lock            held (flock) by the run writing the folder: a second run on it is refused

Resume: keys already in ``episodes.jsonl`` are skipped (crashed ones too, unless ``retry_errors``); a line
cut short by a kill is dropped. An interrupt (Ctrl-C) stops the run and keeps every finished episode. A
crashing episode is recorded with its error and the run goes on.

Executors are pluggable: anything with ``run(spec) -> EpisodeRecord`` and ``close()`` built by a picklable
zero-argument factory (see ``EpisodeExecutor``). ``InProcessExecutor`` drives the simulator directly;
``safevla_node.nodes.graph_executor.RosGraphExecutor`` (``safevla eval --through-ros``: the node graph, the
safety monitor in the loop) plugs in the same way, and its records equal the in-process ones key by key.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from safevla_node.errors import ConfigError
from safevla_node.evaluation.metrics import EpisodeRecord, success_weighted_path_length
from safevla_node.evaluation.policies import EvalPolicy, make_policy
from safevla_node.evaluation.shielding import ShieldDecision, ShieldWorld, shielded_action
from safevla_node.evaluation.suite import EpisodeSpec, SuiteConfig, expand
from safevla_node.safety.shield import Shield, ShieldConfig
from safevla_node.safety.types import RobotState, StepCost, VerdictKind
from sim_bridge.interface import SimBackend

__all__ = [
    "EPISODES_FILE",
    "LOCK_FILE",
    "SUITE_FILE",
    "CostObserver",
    "EpisodeExecutor",
    "InProcessExecutor",
    "Progress",
    "RunResult",
    "ShieldObserver",
    "backend_kwargs",
    "home_backend_kwargs",
    "load_records",
    "read_records",
    "run_suite",
    "worker_threads",
]

_log = logging.getLogger(__name__)

SUITE_FILE = "suite.json"
EPISODES_FILE = "episodes.jsonl"
LOCK_FILE = ".lock"


class EpisodeExecutor(Protocol):
    """Runs episodes one at a time; owns whatever it needs (backends, policies, a node graph)."""

    def run(self, spec: EpisodeSpec) -> EpisodeRecord:
        """Run ``spec`` and report it; must not raise for a failing episode (record ``error`` instead)."""

    def close(self) -> None:
        """Release simulators and models."""


ExecutorFactory = Callable[[], EpisodeExecutor]


def backend_kwargs(spec: EpisodeSpec) -> dict[str, Any]:
    """Constructor arguments of the MuJoCo backend for the spec's difficulty, perturbation and cameras."""
    return home_backend_kwargs(spec.difficulty, spec.perturbation, spec.camera_size, depth=False)


def home_backend_kwargs(difficulty: str, perturbation: str, camera_size: tuple[int, int],
                        depth: bool) -> dict[str, Any]:
    """Constructor arguments of the MuJoCo backend (shared with the sim_bridge node, so an episode through
    ROS runs in the same home as in-process)."""
    from sim_bridge.homegen import HomeGenConfig
    from sim_bridge.mujoco.perturb import Perturbations

    home = {"easy": HomeGenConfig.easy(), "medium": HomeGenConfig(), "hard": HomeGenConfig.hard()}
    p = perturbation
    perturb = Perturbations(colour=p in ("colour", "all"), lighting=p in ("light", "all"),
                            material=p in ("material", "all"))
    return {"home_config": home[difficulty], "perturbations": perturb, "camera_size": camera_size,
            "depth": depth}


def _error_summary(exc: BaseException) -> str:
    """``Type: message (at file:line in function)`` of the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f" (at {Path(last.filename).name}:{last.lineno} in {last.name})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


#: Called with every shield decision of a shield-on episode: (step, robot state it was judged at, decision).
ShieldObserver = Callable[[int, RobotState, ShieldDecision], None]
#: Called with every step that cost something: (step, its cost, whose ``details`` say why).
CostObserver = Callable[[int, StepCost], None]


class InProcessExecutor:
    """Drives the simulator backend directly; one backend per (difficulty, perturbation) and one adapter per
    policy are kept for the executor's lifetime. ``observer`` sees every shield decision and ``cost_observer``
    every costly step (``safevla explain`` prints both)."""

    def __init__(self, observer: ShieldObserver | None = None, cost_observer: CostObserver | None = None) -> None:
        self._backends: dict[tuple[Any, ...], SimBackend] = {}
        self._policies: dict[tuple[Any, ...], EvalPolicy] = {}
        self._shields: dict[ShieldConfig, Shield] = {}
        self._world = ShieldWorld()
        self._observer = observer
        self._cost_observer = cost_observer

    def _backend(self, spec: EpisodeSpec) -> SimBackend:
        from sim_bridge.registry import make_backend

        if spec.backend_key not in self._backends:
            self._backends[spec.backend_key] = make_backend(spec.backend, **backend_kwargs(spec))
        return self._backends[spec.backend_key]

    def _policy(self, spec: EpisodeSpec, backend: SimBackend) -> EvalPolicy:
        # Experts are bound to the backend they plan on; checkpoint policies are shared by every backend.
        key = (spec.policy, spec.planning_margins, spec.backend_key if not spec.policy.needs_images else None)
        if key not in self._policies:
            self._policies[key] = make_policy(spec.policy, backend, spec.planning_margins)
        return self._policies[key]

    def run(self, spec: EpisodeSpec) -> EpisodeRecord:
        """Run one episode; any exception becomes the record's ``error`` (and the backend is rebuilt)."""
        base = EpisodeRecord(
            key=spec.key, seed=spec.seed, task=spec.task.value, difficulty=spec.difficulty,
            policy=spec.policy.name, shield=spec.shield, perturbation=spec.perturbation,
            feasible=spec.feasible,
        )
        start = time.perf_counter()
        try:
            record = self._episode(spec, base)
        except Exception as exc:  # noqa: BLE001 (any failure of one episode is recorded, the run goes on)
            _log.warning("episode %s failed: %s", spec.key, _error_summary(exc))
            broken = self._backends.pop(spec.backend_key, None)
            if broken is not None:
                broken.close()
            record = replace(base, error=_error_summary(exc))
        return replace(record, wall_time_s=time.perf_counter() - start)

    def _episode(self, spec: EpisodeSpec, base: EpisodeRecord) -> EpisodeRecord:
        backend = self._backend(spec)
        policy = self._policy(spec, backend)
        render = spec.policy.needs_images
        observation = backend.reset(spec.seed, spec.task, infeasible=not spec.feasible)
        status = backend.status()
        policy.reset(status.task, spec.seed)
        self._world.reset(status.task.target_id)
        shield = self._shields.setdefault(spec.shield_config, Shield(spec.shield_config))
        interventions = dict.fromkeys(VerdictKind, 0)
        budget = min(spec.step_budget, status.task.max_steps)
        while status.steps < budget and not status.done:
            action, probabilities = policy.act(observation)
            executed: int | None = action
            if spec.shield:
                world = self._world.update(observation)
                decision = shielded_action(shield, world, action, probabilities)
                if self._observer is not None:
                    self._observer(status.steps, world.robot, decision)
                interventions[decision.verdict.kind] += 1
                executed = decision.executed
            policy.executed(executed)
            if executed is None:  # a STOP spends the step standing still
                step_cost = backend.commit_step()
                observation = backend.observe(render)
            else:
                result = backend.execute_action(executed, render)
                step_cost, observation = result.cost, result.observation
            if step_cost.total and self._cost_observer is not None:
                self._cost_observer(status.steps, step_cost)
            status = backend.status()
        cost = status.cumulative_cost
        return replace(
            base,
            success=status.success,
            steps=status.steps,
            cost=float(cost.total),
            cost_by_category={c.value: float(v) for c, v in cost.by_category().items()},
            sel=success_weighted_path_length(status.success, status.path_length, status.expert_path_length),
            path_length=status.path_length,
            expert_path_length=status.expert_path_length,
            instruction=status.task.instruction,
            limits=interventions[VerdictKind.LIMIT],
            replacements=interventions[VerdictKind.REPLACE],
            stops=interventions[VerdictKind.STOP],
        )

    def close(self) -> None:
        """Close every backend."""
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
        self._policies.clear()


# --- results folder ---------------------------------------------------------------------------------------


def load_records(out_dir: str | Path) -> dict[str, EpisodeRecord]:
    """The records of a results folder by key (a later line for the same key wins); a cut-off last line is
    dropped from the file.

    Raises:
        ConfigError: a complete line that is not a record (naming the file and line).
    """
    path = Path(out_dir) / EPISODES_FILE
    if not path.is_file():
        return {}
    text = path.read_text()
    if text and not text.endswith("\n"):  # killed mid-write: the partial line is not a finished episode
        cut = text.rfind("\n") + 1
        _log.warning("%s: dropping an incomplete last line (%d bytes)", path, len(text) - cut)
        path.write_text(text[:cut])
    try:
        return read_records(path)
    except ConfigError as exc:  # a resumed run cannot go on past a corrupt record
        raise ConfigError(f"{exc}; move the file away to start over") from None


def read_records(path: str | Path) -> dict[str, EpisodeRecord]:
    """The records of an episodes file by key (a later line for the same key wins), read only: a results
    folder's episodes.jsonl or a copy of one (docs/*/eval_episodes.jsonl). A cut-off last line is skipped.

    Raises:
        ConfigError: the file cannot be read, or a complete line is not a record (naming the file and line).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read episode records ({exc.strerror or exc})") from None
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]
    records: dict[str, EpisodeRecord] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = EpisodeRecord.from_json(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
        records[record.key] = record
    return records


def _claim_folder(suite: SuiteConfig, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / SUITE_FILE
    fingerprint = suite.fingerprint()
    if marker.is_file():
        if marker.read_text() != fingerprint:
            raise ConfigError(
                f"{out_dir} holds results of a different suite definition ({marker}); use another output "
                "folder, or delete it to start over"
            )
    else:
        marker.write_text(fingerprint)


@dataclass(frozen=True)
class Progress:
    """Where a run stands after one more episode."""

    done: int
    pending: int
    elapsed_s: float
    record: EpisodeRecord

    @property
    def eta_s(self) -> float:
        """Remaining time at this run's average pace."""
        return self.elapsed_s / self.done * (self.pending - self.done) if self.done else float("nan")

    def line(self) -> str:
        """One human-readable progress line."""
        r = self.record
        verdict = "success" if r.success else "failure"
        outcome = f"ERROR {r.error}" if r.error else f"{verdict} CC={r.cost:g} steps={r.steps}"
        return (f"[{self.done}/{self.pending}] {r.key}: {outcome} ({r.wall_time_s:.1f} s); "
                f"elapsed {self.elapsed_s:.0f} s, ETA {self.eta_s:.0f} s")


@dataclass(frozen=True)
class RunResult:
    """Outcome of ``run_suite``.

    Attributes:
        total: episodes in the suite.
        skipped: already recorded before this run.
        ran: finished in this run.
        errors: crashed episodes among those that ran.
        interrupted: the run was stopped (Ctrl-C) before every pending episode finished.
        out_dir: the results folder.
    """

    total: int
    skipped: int
    ran: int
    errors: int
    interrupted: bool
    out_dir: Path


def _log_progress(progress: Progress) -> None:
    _log.info(progress.line())


# Worker-process state (spawn context: each worker builds its own executor and backends).
_WORKER_EXECUTOR: EpisodeExecutor | None = None


def worker_threads(workers: int) -> int:
    """Intra-op torch threads each of ``workers`` worker processes gets: its share of the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def _worker_init(factory: ExecutorFactory, threads: int) -> None:
    global _WORKER_EXECUTOR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    # A terminated worker exits through SystemExit, so its finalizers run: an executor may own processes
    # (a node graph) that must not outlive it.
    signal.signal(signal.SIGTERM, _exit_worker)
    # The workers share the cores: torch's default of one intra-op thread per core in every worker has them
    # spin on cores the others hold (checkpoint episodes ran ~30x slower with 2 workers on 2 cores). Set
    # before the executor imports torch, which reads it once; a value the user exported is kept.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _WORKER_EXECUTOR = factory()
    multiprocessing.util.Finalize(_WORKER_EXECUTOR, _WORKER_EXECUTOR.close, exitpriority=10)


def _exit_worker(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _worker_run(spec: EpisodeSpec) -> EpisodeRecord:
    assert _WORKER_EXECUTOR is not None
    return _WORKER_EXECUTOR.run(spec)


def _records(
    pending: Sequence[EpisodeSpec], workers: int, factory: ExecutorFactory
) -> Iterator[EpisodeRecord]:
    if workers == 1:
        executor = factory()
        try:
            for spec in pending:
                yield executor.run(spec)
        finally:
            executor.close()
        return
    pool = multiprocessing.get_context("spawn").Pool(workers, _worker_init, (factory, worker_threads(workers)))
    try:
        yield from pool.imap_unordered(_worker_run, pending, chunksize=1)
        pool.close()
        pool.join()  # workers exit normally, closing their executors
    finally:
        pool.terminate()
        pool.join()


def run_suite(
    suite: SuiteConfig,
    out_dir: str | Path,
    *,
    workers: int = 1,
    max_episodes: int | None = None,
    retry_errors: bool = False,
    executor_factory: ExecutorFactory = InProcessExecutor,
    on_progress: Callable[[Progress], None] = _log_progress,
) -> RunResult:
    """Run the episodes of ``suite`` not yet recorded in ``out_dir`` (at most ``max_episodes`` of them).

    Raises:
        ConfigError: ``out_dir`` belongs to another suite, holds a corrupt record, is being written by another
            run, or ``workers`` < 1.
    """
    if workers < 1:
        raise ConfigError(f"workers={workers!r} must be at least 1")
    out = Path(out_dir)
    _claim_folder(suite, out)
    with _only_writer(out):
        return _run_pending(suite, out, workers, max_episodes, retry_errors, executor_factory, on_progress)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's or CI's kill, ``timeout``) ends the run like Ctrl-C: the pool is terminated
    and the episodes recorded so far are kept. Python's default would exit on the spot, leaving the workers
    to run their episodes to the end for nothing. Only the main thread can set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _only_writer(out: Path) -> Iterator[None]:
    """Hold the results folder's lock: two runs appending to one ``episodes.jsonl`` would run every episode
    twice (and one could cut the other's last line as a partial write).

    Raises:
        ConfigError: another run holds it.
    """
    with (out / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{out} is being written by another run; wait for it to finish or use another "
                              "output folder") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_pending(suite: SuiteConfig, out: Path, workers: int, max_episodes: int | None, retry_errors: bool,
                 executor_factory: ExecutorFactory, on_progress: Callable[[Progress], None]) -> RunResult:
    specs = expand(suite)
    recorded = load_records(out)
    pending = [
        s for s in specs if s.key not in recorded or (retry_errors and recorded[s.key].error is not None)
    ]
    skipped = len(specs) - len(pending)
    if max_episodes is not None:
        pending = pending[:max_episodes]
    _log.info("%s: %d episodes, %d already recorded, running %d with %d worker(s)", suite.name, len(specs),
              skipped, len(pending), workers)
    ran = errors = 0
    interrupted = False
    start = time.perf_counter()
    with (out / EPISODES_FILE).open("a") as sink, _terminate_as_interrupt():
        try:
            for record in _records(pending, min(workers, max(1, len(pending))), executor_factory):
                sink.write(record.to_json() + "\n")
                sink.flush()
                ran += 1
                errors += record.error is not None
                on_progress(Progress(ran, len(pending), time.perf_counter() - start, record))
        except KeyboardInterrupt:
            interrupted = True
            _log.warning("interrupted after %d of %d episodes; rerun the same command to resume", ran,
                         len(pending))
    return RunResult(len(specs), skipped, ran, errors, interrupted, out)
