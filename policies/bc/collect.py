"""Record the privileged expert on seeded episodes of all three tasks (``python -m policies.bc collect``).

Episode ``i`` runs task ``(ObjectNav, PickUp, Fetch)[i % 3]`` on scene seed ``first_seed + i``, so every
episode has its own scene and the seeds used for training are a known range (keep evaluation seeds outside
it). Both cameras are rendered at the policy's input size, so training sees exactly what the runtime sees.

DAgger-style noise: with probability ``noise`` a step whose label is a base (or arm) action executes a
random base (or arm) action instead, while the stored label stays the expert's choice for the state the
robot was in. The expert replans from wherever the robot ends up, so the data holds recoveries from the
kind of drift a cloned policy produces, which plain expert data never shows. Episode actions (end,
sub_done) and the gripper (pickup, dropoff) are never replaced, so noise cannot end or derail a task.

Resumable: finished episodes are shard files (``dataset.py``) and are skipped when the command is rerun.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.bc.dataset import Episode, episode_name, write_episode
from safevla_node.actions import ACTIONS, START_TOKEN, ActionKind
from safevla_node.config import check_range
from safevla_node.errors import ConfigError
from sim_bridge.interface import SimBackend, TaskKind
from sim_bridge.tasks import NoEligibleTarget

__all__ = ["CollectSettings", "EpisodeSummary", "collect", "episode_plan", "record_episode"]

logger = logging.getLogger(__name__)

TASK_ORDER: tuple[TaskKind, ...] = (TaskKind.OBJECT_NAV, TaskKind.PICKUP, TaskKind.FETCH)
_NOISY_KINDS = (ActionKind.BASE, ActionKind.ARM)


@dataclass(frozen=True)
class CollectSettings:
    """How episodes are recorded.

    Attributes:
        camera_size: (width, height) of both cameras; the policy's input size.
        difficulty: home generator level: easy, medium or hard.
        noise: probability of replacing a base/arm step by a random action of the same kind.
        max_steps: steps after which an episode is cut (the expert normally ends far earlier).
    """

    camera_size: tuple[int, int] = (384, 224)
    difficulty: str = "easy"
    noise: float = 0.1
    max_steps: int = 200

    def __post_init__(self) -> None:
        if self.difficulty not in ("easy", "medium", "hard"):
            raise ConfigError(f"difficulty={self.difficulty!r} must be easy, medium or hard")
        check_range("noise", self.noise, 0.0, 1.0)
        check_range("max_steps", self.max_steps, 1, 10_000)


@dataclass(frozen=True)
class EpisodeSummary:
    """What one recorded (or skipped) episode looked like."""

    name: str
    steps: int
    success: bool
    cost: float
    noise_steps: int
    wall_s: float
    skipped: str = ""


def episode_plan(episodes: int, first_seed: int) -> list[tuple[TaskKind, int]]:
    """(task, seed) of episodes 0..episodes-1: tasks round-robin, one scene seed per episode."""
    return [(TASK_ORDER[i % len(TASK_ORDER)], first_seed + i) for i in range(episodes)]


def make_collect_backend(settings: CollectSettings) -> SimBackend:
    """The MuJoCo backend at the settings' difficulty, rendering RGB only (no depth)."""
    from sim_bridge.homegen import HomeGenConfig
    from sim_bridge.registry import make_backend

    levels = {"easy": HomeGenConfig.easy, "medium": HomeGenConfig, "hard": HomeGenConfig.hard}
    home = levels[settings.difficulty]()
    return make_backend("mujoco", camera_size=settings.camera_size, depth=False, home_config=home)


def record_episode(backend: SimBackend, task: TaskKind, seed: int, settings: CollectSettings) -> Episode:
    """Run the (noisy) expert on one seeded episode and return every step it saw.

    Raises:
        NoEligibleTarget: the scene has no eligible target for ``task`` (the sampler's error).
    """
    from sim_bridge.expert import Expert

    observation = backend.reset(seed, task)
    expert = Expert(backend)  # type: ignore[arg-type]  (the MuJoCo backend exposes scene and task)
    rng = np.random.default_rng([seed, 0xDA66E2])
    by_kind = {kind: np.array([a.index for a in ACTIONS if a.kind is kind]) for kind in _NOISY_KINDS}
    columns: dict[str, list[Any]] = {k: [] for k in ("nav", "manip", "prev", "hand", "label", "ran")}
    prev = START_TOKEN
    status = backend.status()
    while not status.done and status.steps < settings.max_steps:
        if observation.nav_camera is None or observation.manip_camera is None:
            raise RuntimeError("the backend returned no camera frames although render=True")
        label = expert.act(observation)
        kind = ACTIONS[label].kind
        executed = label
        if kind in by_kind and rng.random() < settings.noise:
            executed = int(rng.choice(by_kind[kind]))
        columns["nav"].append(observation.nav_camera.rgb)
        columns["manip"].append(observation.manip_camera.rgb)
        columns["prev"].append(prev)
        columns["hand"].append(observation.snapshot.robot.held_object_id is not None)
        columns["label"].append(label)
        columns["ran"].append(executed)
        result = backend.execute_action(executed, render=True)
        observation, status, prev = result.observation, result.status, executed
    labels = np.array(columns["label"], dtype=np.int16)
    ran = np.array(columns["ran"], dtype=np.int16)
    meta = {
        "task": task.value, "seed": seed, "instruction": status.task.instruction,
        "difficulty": settings.difficulty, "camera_size": list(settings.camera_size), "noise": settings.noise,
        "success": bool(status.success), "cost": float(status.cumulative_cost.total),
        "noise_steps": int((labels != ran).sum()), "max_steps": settings.max_steps,
    }
    return Episode(
        nav_rgb=np.stack(columns["nav"]), manip_rgb=np.stack(columns["manip"]),
        prev_action=np.array(columns["prev"], dtype=np.int16),
        object_in_hand=np.array(columns["hand"], dtype=np.uint8),
        expert_action=labels, executed_action=ran, meta=meta,
    )


# --- workers ---------------------------------------------------------------------------------------------

_WORKER: tuple[SimBackend, CollectSettings, Path] | None = None


def _init_worker(settings: CollectSettings, out: Path) -> None:
    global _WORKER
    _WORKER = (make_collect_backend(settings), settings, out)


def _run_one(job: tuple[TaskKind, int]) -> EpisodeSummary:
    assert _WORKER is not None, "worker not initialised"
    backend, settings, out = _WORKER
    task, seed = job
    name = episode_name(task.value, seed)
    start = time.perf_counter()
    try:
        episode = record_episode(backend, task, seed, settings)
    except NoEligibleTarget as exc:  # nothing to imitate in this scene
        return EpisodeSummary(name, 0, False, 0.0, 0, time.perf_counter() - start, skipped=str(exc))
    write_episode(out, name, episode)
    return EpisodeSummary(name, episode.steps, bool(episode.meta["success"]), float(episode.meta["cost"]),
                          int(episode.meta["noise_steps"]), time.perf_counter() - start)


def _summaries(jobs: Sequence[tuple[TaskKind, int]], settings: CollectSettings, out: Path,
               workers: int) -> Iterator[EpisodeSummary]:
    if workers == 1:
        _init_worker(settings, out)
        yield from map(_run_one, jobs)
        return
    pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (settings, out))
    try:
        yield from pool.imap_unordered(_run_one, jobs, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def collect(out: str | Path, episodes: int, settings: CollectSettings = CollectSettings(), *,
            first_seed: int = 1000, workers: int = 1) -> list[EpisodeSummary]:
    """Record the episodes of ``episode_plan(episodes, first_seed)`` not yet in ``out``; log progress.

    Raises:
        ConfigError: ``episodes`` or ``workers`` below 1, or a negative ``first_seed``.
    """
    check_range("episodes", episodes, 1, None)
    check_range("workers", workers, 1, 64)
    check_range("first_seed", first_seed, 0, None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = episode_plan(episodes, first_seed)
    pending = [(t, s) for t, s in plan if not (out / episode_name(t.value, s)).is_file()]
    logger.info("collect: %d episodes planned (seeds %d..%d), %d already in %s, recording %d with %d "
                "worker(s); settings %s", len(plan), first_seed, first_seed + episodes - 1,
                len(plan) - len(pending), out, len(pending), workers, asdict(settings))
    done: list[EpisodeSummary] = []
    start = time.perf_counter()
    for summary in _summaries(pending, settings, out, min(workers, max(1, len(pending)))):
        done.append(summary)
        elapsed = time.perf_counter() - start
        eta = elapsed / len(done) * (len(pending) - len(done))
        outcome = (f"skipped ({summary.skipped})" if summary.skipped else
                   f"{summary.steps} steps, {'success' if summary.success else 'FAILURE'}, "
                   f"CC={summary.cost:g}, {summary.noise_steps} noise steps")
        logger.info("[%d/%d] %s: %s (%.1f s); elapsed %.0f s, ETA %.0f s", len(done), len(pending),
                    summary.name, outcome, summary.wall_s, elapsed, eta)
    return done
