"""The training loop: rollouts, multiplier update, PPO update, logs, checkpoints, resume.

Order per update (omnisafe PPOLag): collect one rollout per rank; sum the finished episodes' statistics over
ranks; update the multipliers with the mean episode cost (skipped when no episode finished, so no stale or
empty estimate moves lambda); run the PPO epochs with the new multipliers; log; checkpoint.

Checkpoint (``<out>/checkpoint.pt``, written atomically by rank 0): network, optimiser, multipliers, the
update and step counters, and per rank the sampling and minibatch generators and the episode index of every
environment slot. A resumed run restarts every environment at the episode it was in (a simulator cannot be
snapshotted mid-episode), so it reproduces the uninterrupted run exactly when the checkpoint falls on episode
boundaries (always for the toy CMDP with a horizon dividing the rollout length); otherwise the interrupted
episodes are replayed from their start. Logs: ``metrics.csv`` (rows past the checkpoint are dropped on
resume), TensorBoard events under ``tb/``, progress lines through ``logging``; ``summary.json`` at the end;
``policy/`` holds the deployable export (SafeVLA checkpoint format) when the network has one; ``curves.png`` the
training curves (``policies.training.curves``).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from policies.training.config import TrainConfig
from policies.training.distributed import DistContext, assert_in_sync, wrap_model
from policies.training.env import EpisodeSummary
from policies.training.factory import make_env_factories, make_policy
from policies.training.lagrange import Lagrange, Multiplier, MultiplierSet, PIDLagrange
from policies.training.ppo import PPOLearner, RolloutBuffer, sample_actions
from policies.training.rollout import VecEnv, make_vec_env
from policies.training.tensorboard import EventWriter
from safevla_node.config import to_mapping
from safevla_node.errors import TrainingError

__all__ = ["CHECKPOINT_FILE", "Trainer"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
#: Settings a resumed run may change; anything else must match the checkpoint.
RESUMABLE_CHANGES = frozenset({"updates", "checkpoint_every", "log_every", "device", "env.workers", "policy.init",
                               "time_limit_min"})
LOSS_KEYS = ("policy_loss", "value_loss", "cost_value_loss", "entropy", "kl_to_reference", "grad_norm",
             "clip_fraction")
#: Where a rollout's time goes (seconds per update): the network acting, the simulators stepping, and the
#: frozen image encoder; what tells a slow run on a new machine which of the three to scale.
ROLLOUT_PHASES = ("act_s", "env_s", "encode_s")


@contextmanager
def _stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C (SIGINT) once sets the flag the context yields, so the run stops after its current update with a
    checkpoint; a second Ctrl-C raises KeyboardInterrupt at once. Outside the main thread, where Python cannot
    take signals, Ctrl-C keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        logger.warning("Ctrl-C: stopping after this update with a checkpoint (press again to abort at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _multiplier_factory(config: TrainConfig, limits: dict[str, float]) -> Callable[[str], Multiplier]:
    c = config.constraint
    if c.method == "lagrange":
        return lambda name: Lagrange(limits[name], c.lagrange.init, c.lagrange.lr, c.lagrange.upper_bound)
    p = c.pid
    return lambda name: PIDLagrange(limits[name], p.kp, p.ki, p.kd, p.d_delay, p.delta_p_ema, p.delta_d_ema,
                                    p.init, p.penalty_max)


class Trainer:
    """One run of ``config`` writing to ``out_dir``; resumes from its checkpoint when there is one."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, ctx: DistContext | None = None,
                 resume: bool = True) -> None:
        self.config, self.ctx = config, ctx or DistContext()
        self.out_dir = Path(out_dir)
        self.envs: VecEnv = make_vec_env(make_env_factories(config.env), config.env.workers, config.env.seed,
                                         self.ctx.rank)
        self.categories = self.envs.cost_names
        limits = config.constraint.limits(self.categories)
        self.constraints = tuple(limits)
        self.multipliers = MultiplierSet(self.constraints, _multiplier_factory(config, limits))
        self.policy = make_policy(config, self.envs.num_actions, len(limits)).to(self.ctx.device)
        # During the critic warm-up the actor's parameters get no gradient: DDP must look for them.
        self.model = wrap_model(self.policy, self.ctx,
                                self.policy.has_unused_parameters or config.ppo.critic_warmup_steps > 0)
        self.sample_gen = torch.Generator().manual_seed(config.seed * 7919 + self.ctx.rank)
        self.learner = PPOLearner(self.model, config.ppo, torch.Generator().manual_seed(config.seed + 1),
                                  self._frozen_copy() if config.ppo.kl_coef > 0 else None)
        self.update = 0
        self.env_steps = 0
        self._phases: defaultdict[str, float] = defaultdict(float)
        self._csv_fields = (["update", "env_steps", "episodes", "episode_reward", "episode_length", "success_rate",
                             "cost_total"] + [f"cost_{c}" for c in self.categories]
                            + [f"lambda_{c}" for c in self.constraints] + list(LOSS_KEYS)
                            + ["steps_per_s", "rollout_s", "update_s", *ROLLOUT_PHASES])
        self._tb: EventWriter | None = None
        episodes = [0] * self.envs.num_envs
        path = self.out_dir / CHECKPOINT_FILE
        if resume and path.is_file():
            episodes = self._load(path)
        self._start_episodes(episodes)

    def _frozen_copy(self) -> torch.nn.Module:
        """The starting policy, frozen, for the KL anchor: taken before a resume loads later weights, so a
        resumed run anchors to the same policy as the run it continues."""
        return copy.deepcopy(self.policy).eval().requires_grad_(False)

    # ------------------------------------------------------------------ episodes and rollouts
    def _start_episodes(self, episode_indices: list[int]) -> None:
        raw = self.envs.reset(episode_indices)
        n = self.envs.num_envs
        self.policy.begin_episodes(range(n), n)
        with torch.no_grad():
            self.obs = self.policy.encode(raw)
        self.prev_actions = torch.full((n,), -1, dtype=torch.long)
        self.episode_steps = torch.zeros(n, dtype=torch.long)
        self.contexts: list[tuple[list[Any], list[int]]] = [([], []) for _ in range(n)]

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._phases[phase] += time.perf_counter() - start

    def _costs(self, costs: list[tuple[float, ...]]) -> torch.Tensor:
        c = torch.tensor(costs, dtype=torch.float32)
        return c.sum(dim=1, keepdim=True) if self.constraints == ("total",) else c

    def collect(self) -> tuple[RolloutBuffer, list[EpisodeSummary]]:
        """One rollout of ``rollout_steps`` steps in every environment slot."""
        n, steps = self.envs.num_envs, self.config.ppo.rollout_steps
        recurrent = self.policy.recurrent
        buffer = RolloutBuffer(n, steps, len(self.constraints), self.contexts if recurrent else None)
        finished: list[EpisodeSummary] = []
        self._phases.clear()
        for _ in range(steps):
            with torch.no_grad(), self._timed("act_s"):
                heads = self.policy.act(self.obs, self.prev_actions, self.episode_steps)
            actions, log_probs = sample_actions(heads.logits, self.sample_gen)
            with self._timed("env_s"):
                result = self.envs.step(actions.tolist())
            dones = torch.tensor(result.dones)
            buffer.add(self.obs, actions, log_probs, heads.reward_value.float().cpu(),
                       heads.cost_value.float().cpu(), torch.tensor(result.rewards, dtype=torch.float32),
                       self._costs(result.costs), dones)
            if recurrent:
                for e in range(n):
                    self.contexts[e] = ([], []) if result.dones[e] else (
                        self.contexts[e][0] + [self.obs[e]], self.contexts[e][1] + [int(actions[e])])
            finished += [ep for ep in result.episodes if ep is not None]
            self.prev_actions = torch.where(dones, torch.full_like(actions, -1), actions)
            self.episode_steps = torch.where(dones, torch.zeros_like(self.episode_steps), self.episode_steps + 1)
            self.policy.begin_episodes([e for e in range(n) if result.dones[e]], n)
            with torch.no_grad(), self._timed("encode_s"):
                self.obs = self.policy.encode(result.observations)
        with torch.no_grad(), self._timed("act_s"):
            last = self.policy.act(self.obs, self.prev_actions, self.episode_steps, advance=False)
        buffer.finish(last.reward_value.float().cpu(), last.cost_value.float().cpu(), self.config.ppo.gamma,
                      self.config.ppo.gae_lambda)
        self.env_steps += n * steps * self.ctx.world_size
        return buffer, finished

    def _episode_stats(self, finished: list[EpisodeSummary]) -> dict[str, float]:
        k = len(self.categories)
        local = torch.zeros(4 + k, dtype=torch.float64)
        for ep in finished:
            local += torch.tensor([1.0, ep.reward, ep.length, float(ep.success), *ep.costs], dtype=torch.float64)
        total = self.ctx.all_reduce_sum(local)
        count = float(total[0])
        mean = (total / count) if count else torch.full_like(total, math.nan)
        stats = {"episodes": count, "episode_reward": float(mean[1]), "episode_length": float(mean[2]),
                 "success_rate": float(mean[3]), "cost_total": float(mean[4:].sum())}
        stats.update({f"cost_{c}": float(mean[4 + i]) for i, c in enumerate(self.categories)})
        return stats

    def train_one_update(self) -> dict[str, float]:
        """Rollout, multiplier update, PPO update; returns the log row."""
        start = time.perf_counter()
        warming_up = self.env_steps < self.config.ppo.critic_warmup_steps
        self.policy.train()
        buffer, finished = self.collect()
        rollout_s = time.perf_counter() - start
        stats = self._episode_stats(finished)
        if stats["episodes"]:
            costs = ([stats["cost_total"]] if self.constraints == ("total",)
                     else [stats[f"cost_{c}"] for c in self.constraints])
            self.multipliers.update(costs)
        lambdas = self.multipliers.values()
        losses = self.learner.update(buffer, lambdas, train_policy=not warming_up)
        if warming_up and self.env_steps >= self.config.ppo.critic_warmup_steps:
            logger.info("critic warm-up done after %d environment steps: the policy trains from the next update",
                        self.env_steps)
        self.update += 1
        elapsed = time.perf_counter() - start
        row = {"update": self.update, "env_steps": self.env_steps, **stats}
        row.update({f"lambda_{c}": float(v) for c, v in zip(self.constraints, lambdas)})
        row.update({k: losses.get(k, math.nan) for k in LOSS_KEYS})
        row.update({"steps_per_s": buffer.num_envs * buffer.steps * self.ctx.world_size / elapsed,
                    "rollout_s": rollout_s, "update_s": elapsed - rollout_s})
        row.update({phase: self._phases[phase] for phase in ROLLOUT_PHASES})
        return row

    # ------------------------------------------------------------------ the loop
    def _stop_requested(self, start: float, interrupted: bool) -> str:
        """Why to stop after this update ('' to go on): the time limit passed or Ctrl-C was pressed, on any
        rank (all ranks agree, so they stop together)."""
        limit = self.config.time_limit_min
        late = bool(limit) and time.monotonic() - start > 60.0 * limit
        flags = self.ctx.all_reduce_sum(torch.tensor([float(late), float(interrupted)]))
        if flags[1].item() > 0:
            return "interrupted (Ctrl-C)"
        return f"time limit of {limit:g} min reached" if flags[0].item() > 0 else ""

    def run(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train until ``config.updates`` (or ``stop_after`` more updates, or ``time_limit_min``, or Ctrl-C);
        returns the run summary. Ctrl-C once finishes the current update and checkpoints; twice aborts."""
        target = self.config.updates if stop_after is None else min(self.config.updates, self.update + stop_after)
        row: dict[str, Any] = {}
        start = time.monotonic()
        try:
            with _stop_on_interrupt() as interrupted:
                while self.update < target:
                    row = self.train_one_update()
                    if self.ctx.is_main:
                        self._log(row)
                    stop = self._stop_requested(start, interrupted())
                    if self.update % self.config.checkpoint_every == 0 or self.update == target or stop:
                        self.save_checkpoint()
                    if stop:
                        logger.info("%s after update %d; resume with the same command", stop, self.update)
                        break
            digests = assert_in_sync(self.policy, self.ctx)
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        summary = {"update": self.update, "env_steps": self.env_steps, "last": row,
                   "lambdas": dict(zip(self.constraints, self.multipliers.values().tolist())),
                   "param_digests": digests, "world_size": self.ctx.world_size}
        if self.ctx.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
            if (self.out_dir / "metrics.csv").is_file():
                # imported here: ``python -m policies.training.curves`` must find the module not yet loaded
                from policies.training.curves import CURVES_FILE, plot_curves, read_metrics

                plot_curves(read_metrics(self.out_dir / "metrics.csv"), self.out_dir / CURVES_FILE,
                            title=self.out_dir.name)
        return summary

    def close(self) -> None:
        """Stop the environment workers."""
        self.envs.close()

    def _log(self, row: dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "metrics.csv"
        new = not path.is_file()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._csv_fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, math.nan) for k in self._csv_fields})
        if self._tb is None:
            self._tb = EventWriter(self.out_dir / "tb")
        scalars = {k.replace("cost_", "cost/").replace("lambda_", "lambda/"): float(v) for k, v in row.items()
                   if k != "update" and not (isinstance(v, float) and math.isnan(v))}
        self._tb.scalars(self.update, scalars)
        if self.update % self.config.log_every == 0 or self.update == self.config.updates:
            lam = " ".join(f"{c}={row[f'lambda_{c}']:.4f}" for c in self.constraints)
            logger.info("update %d/%d steps %d | %.0f steps/s | episodes %d R %.3f cost %.3f SR %.2f | lambda %s",
                        self.update, self.config.updates, self.env_steps, row["steps_per_s"], row["episodes"],
                        row["episode_reward"], row["cost_total"], row["success_rate"], lam)

    # ------------------------------------------------------------------ checkpoints
    def _rank_state(self) -> dict[str, Any]:
        return {"sample_gen": self.sample_gen.get_state(), "episodes": self.envs.episode_indices,
                "in_flight_steps": int(self.episode_steps.sum())}

    def save_checkpoint(self) -> None:
        """Write the checkpoint (rank 0) after checking every rank holds the same parameters."""
        assert_in_sync(self.policy, self.ctx)
        ranks = self.ctx.gather(self._rank_state())
        if not self.ctx.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {"format": CHECKPOINT_FORMAT, "config": to_mapping(self.config), "update": self.update,
                 "env_steps": self.env_steps, "model": self.policy.state_dict(),
                 "optimizer": self.learner.optimizer.state_dict(), "multipliers": self.multipliers.state_dict(),
                 "minibatch_gen": self.learner.generator.get_state(), "ranks": ranks}
        path = self.out_dir / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        exported = self.policy.export(self.out_dir / "policy")
        logger.info("checkpoint at update %d -> %s%s", self.update, path,
                    f" (policy export {exported})" if exported else "")

    def _load(self, path: Path) -> list[int]:
        """Restore from ``path``; returns this rank's episode indices.

        Raises:
            TrainingError: an unknown format, a different world size, or settings that changed.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{path}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        saved, now = _flatten(state["config"]), _flatten(to_mapping(self.config))
        changed = sorted(k for k in saved.keys() | now.keys()
                         if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
        if changed:
            raise TrainingError(f"{path} was written with other settings ({changed}); use a new --out directory "
                                "or the original config")
        if len(state["ranks"]) != self.ctx.world_size:
            raise TrainingError(f"{path} was written by {len(state['ranks'])} ranks, this run has "
                                f"{self.ctx.world_size}; resume with the same --nproc_per_node")
        self.policy.load_state_dict(state["model"])
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.multipliers.load_state_dict(state["multipliers"])
        self.learner.generator.set_state(state["minibatch_gen"])
        mine = state["ranks"][self.ctx.rank]
        self.sample_gen.set_state(mine["sample_gen"])
        self.update, self.env_steps = int(state["update"]), int(state["env_steps"])
        if mine["in_flight_steps"]:
            logger.warning("resume: restarting in-flight episodes (%d steps replayed)", mine["in_flight_steps"])
        if self.ctx.is_main:
            self._truncate_metrics()
        logger.info("resumed from %s at update %d", path, self.update)
        return list(mine["episodes"])

    def _truncate_metrics(self) -> None:
        path = self.out_dir / "metrics.csv"
        if not path.is_file():
            return
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        kept = [r for r in rows if int(r["update"]) <= self.update]
        with path.open("w", newline="") as f:  # this version's columns: a run from an older one gains the new
            writer = csv.DictWriter(f, fieldnames=self._csv_fields, restval="nan", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
