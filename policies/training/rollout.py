"""Vectorised environments for rollouts: N ``TrainingEnv``s stepped in this process or one worker process each.

Both variants share ``EnvSlot`` (auto-reset, episode bookkeeping, seeds from ``episode_seed``), so they return
identical data. The worker protocol over a ``multiprocessing`` pipe is a request/reply of tuples:
``("reset", episode_index)`` -> observation, ``("step", action)`` -> ``StepOutcome``, ``("close", None)``;
a worker answers ``("ok", payload)`` or ``("error", traceback text)``, which raises ``TrainingError`` here with
the slot named. Requests go to every worker before any reply is read, so the simulators step in parallel.
Workers start with the 'spawn' method (no forked torch or GL state) and take a picklable env factory.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from policies.training.env import EpisodeSummary, StepOutcome, TrainingEnv, episode_seed
from safevla_node.errors import TrainingError

__all__ = ["EnvSlot", "InProcessVecEnv", "SubprocVecEnv", "VecEnv", "VecStep", "make_vec_env"]

EnvFactory = Callable[[], TrainingEnv]


class EnvSlot:
    """One environment with its episode counter and running totals; resets itself when an episode ends."""

    def __init__(self, env: TrainingEnv, base_seed: int, rank: int, slot: int) -> None:
        self.env, self.base_seed, self.rank, self.slot = env, base_seed, rank, slot
        self.episode = 0
        self._reward, self._costs, self._length = 0.0, [0.0] * len(env.cost_names), 0

    def reset(self, episode: int) -> Any:
        """Start episode number ``episode`` of this slot."""
        self.episode = episode
        self._reward, self._costs, self._length = 0.0, [0.0] * len(self.env.cost_names), 0
        return self.env.reset(episode_seed(self.base_seed, self.rank, self.slot, episode))

    def step(self, action: int) -> StepOutcome:
        """Act; on the episode's end, report it and start the next episode."""
        observation, reward, costs, done, success = self.env.step(action)
        self._reward += reward
        self._costs = [a + b for a, b in zip(self._costs, costs)]
        self._length += 1
        summary = None
        if done:
            summary = EpisodeSummary(self._reward, tuple(self._costs), self._length, success)
            observation = self.reset(self.episode + 1)
        return StepOutcome(observation, reward, tuple(costs), done, summary)


@dataclass(frozen=True)
class VecStep:
    """One step of every slot: lists indexed by slot."""

    observations: list[Any]
    rewards: list[float]
    costs: list[tuple[float, ...]]
    dones: list[bool]
    episodes: list[EpisodeSummary | None]


def _gather(outcomes: Sequence[StepOutcome]) -> VecStep:
    return VecStep([o.observation for o in outcomes], [o.reward for o in outcomes], [o.costs for o in outcomes],
                   [o.done for o in outcomes], [o.episode for o in outcomes])


class VecEnv(ABC):
    """N environment slots; ``episode_indices`` is what a checkpoint needs to replay the same episodes."""

    num_envs: int
    cost_names: tuple[str, ...]
    num_actions: int

    @abstractmethod
    def reset(self, episode_indices: Sequence[int]) -> list[Any]:
        """Start the given episode of every slot; returns the first observations."""

    @abstractmethod
    def step(self, actions: Sequence[int]) -> VecStep:
        """Step every slot (auto-reset on episode end)."""

    @property
    @abstractmethod
    def episode_indices(self) -> list[int]:
        """Index of the episode each slot is in."""

    @abstractmethod
    def close(self) -> None:
        """Stop workers and release simulators."""

    def __enter__(self) -> VecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessVecEnv(VecEnv):
    """All slots stepped in the calling process (tests, the toy CMDP, single-core machines)."""

    def __init__(self, factories: Sequence[EnvFactory], base_seed: int, rank: int = 0) -> None:
        self.slots = [EnvSlot(f(), base_seed, rank, i) for i, f in enumerate(factories)]
        self.num_envs = len(self.slots)
        self.cost_names = self.slots[0].env.cost_names
        self.num_actions = self.slots[0].env.num_actions

    def reset(self, episode_indices: Sequence[int]) -> list[Any]:
        return [slot.reset(e) for slot, e in zip(self.slots, episode_indices, strict=True)]

    def step(self, actions: Sequence[int]) -> VecStep:
        return _gather([slot.step(int(a)) for slot, a in zip(self.slots, actions, strict=True)])

    @property
    def episode_indices(self) -> list[int]:
        return [slot.episode for slot in self.slots]

    def close(self) -> None:
        for slot in self.slots:
            slot.env.close()


def _worker(conn: Connection, factory: EnvFactory, base_seed: int, rank: int, index: int) -> None:
    """Worker process main: build the env, then serve requests until 'close' or the pipe breaks.

    Ctrl-C in a terminal reaches the whole process group: the worker ignores it and leaves the stop to the
    trainer, which finishes its update and checkpoints first (a dead parent breaks the pipe all the same).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    slot: EnvSlot | None = None
    try:
        slot = EnvSlot(factory(), base_seed, rank, index)
        conn.send(("ok", (slot.env.cost_names, slot.env.num_actions)))
        while True:
            command, arg = conn.recv()
            if command == "close":
                break
            try:
                result = slot.reset(arg) if command == "reset" else slot.step(arg)
                conn.send(("ok", result))
            except Exception:  # noqa: BLE001 (sent to the parent, which raises it with the slot named)
                conn.send(("error", traceback.format_exc()))
    except EOFError:
        pass
    except Exception:  # noqa: BLE001 (construction failed)
        conn.send(("error", traceback.format_exc()))
    finally:
        if slot is not None:
            slot.env.close()
        conn.close()


class SubprocVecEnv(VecEnv):
    """One worker process per slot, driven over pipes (see the module docstring)."""

    def __init__(self, factories: Sequence[EnvFactory], base_seed: int, rank: int = 0) -> None:
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        self._episodes = [0] * len(factories)
        for i, factory in enumerate(factories):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, factory, base_seed, rank, i), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.num_envs = len(factories)
        specs = self._replies()
        self.cost_names, self.num_actions = specs[0]

    def _replies(self) -> list[Any]:
        results = []
        for i, conn in enumerate(self._conns):
            try:
                status, payload = conn.recv()
            except EOFError:
                self.close()
                raise TrainingError(f"rollout worker {i} died (exit code {self._procs[i].exitcode})") from None
            if status != "ok":
                self.close()
                raise TrainingError(f"rollout worker {i} failed:\n{payload}")
            results.append(payload)
        return results

    def reset(self, episode_indices: Sequence[int]) -> list[Any]:
        for conn, episode in zip(self._conns, episode_indices, strict=True):
            conn.send(("reset", int(episode)))
        self._episodes = list(episode_indices)
        return self._replies()

    def step(self, actions: Sequence[int]) -> VecStep:
        for conn, action in zip(self._conns, actions, strict=True):
            conn.send(("step", int(action)))
        outcomes: list[StepOutcome] = self._replies()
        self._episodes = [e + o.done for e, o in zip(self._episodes, outcomes)]
        return _gather(outcomes)

    @property
    def episode_indices(self) -> list[int]:
        return list(self._episodes)

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []


def make_vec_env(factories: Sequence[EnvFactory], workers: str, base_seed: int, rank: int = 0) -> VecEnv:
    """``workers`` 'inprocess' or 'subprocess'.

    Raises:
        ValueError: another value.
    """
    if workers == "inprocess":
        return InProcessVecEnv(factories, base_seed, rank)
    if workers == "subprocess":
        return SubprocVecEnv(factories, base_seed, rank)
    raise ValueError(f"workers={workers!r} must be 'inprocess' or 'subprocess'")
