"""Training throughput: environment steps per second of training (rollout + update) against raw stepping.

Baseline, measured in the same run: the environment's own ``execute_action`` / ``step`` rate with random
actions and no policy. Then full training updates (policy act, sampling, buffer, GAE, PPO epochs). Rows:
the toy CMDP (learner overhead alone) and, unless ``--toy-only``, the embedded MuJoCo simulator with the tiny
SafeVLA from scratch.

Then the rollout's acting alone: N slots in different episodes (mixed instruction lengths) stepped by the
batched slot forward, against the baseline of stepping each episode alone as the deployment path does
(``SafeVLAModel.step`` per slot, which is how rollouts acted before the slot state).

Last, one PPO minibatch's forward+backward over an episode that spans rollouts: context steps encoded without
gradient and padding skipped (``forward_sequence``'s ``real_steps`` / ``frozen_steps``), against the baseline
of every padded step encoded with gradient, which is how the update ran before.

    python bench/bench_train.py [--quick] [--toy-only] [--device cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from policies.training.actor_critic import Segment
from policies.training.config import TrainConfig, load_train_config
from policies.training.safevla_actor_critic import SafeVLAActorCritic
from policies.training.sim_env import SimObservation
from policies.training.factory import make_env_factories
from policies.training.trainer import ROLLOUT_PHASES, Trainer

REPO = Path(__file__).resolve().parents[1]


def raw_rate(config: TrainConfig, steps: int) -> float:
    """Steps/s of one environment stepped with uniformly random actions (auto-reset included)."""
    env = make_env_factories(dataclasses.replace(config.env, num_envs=1))[0]()
    rng = np.random.default_rng(0)
    env.reset(0)
    start = time.perf_counter()
    for i in range(steps):
        *_, done, _ = env.step(int(rng.integers(env.num_actions)))
        if done:
            env.reset(i + 1)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def train_rate(config: TrainConfig, updates: int) -> tuple[float, dict[str, float]]:
    """(steps/s, share of the time per phase: the rollout's act / env / encode, and the PPO update) over
    ``updates`` updates after one warm-up update."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, out, resume=False)
        try:
            trainer.train_one_update()
            rows = [trainer.train_one_update() for _ in range(updates)]
        finally:
            trainer.close()
    steps = sum(config.env.num_envs * config.ppo.rollout_steps for _ in rows)
    total = sum(r["rollout_s"] + r["update_s"] for r in rows)
    shares = {phase: sum(r[phase] for r in rows) / total for phase in (*ROLLOUT_PHASES, "update_s")}
    return steps / total, shares


INSTRUCTIONS = ("find the apple", "pick up the red mug on the table", "go to the sofa", "fetch a bowl")


def _tiny_policy(device: str) -> tuple[SafeVLAActorCritic, Callable[[], None]]:
    """The tiny SafeVLA from scratch on ``device`` and the device's synchronize (a no-op on the CPU)."""
    policy = SafeVLAActorCritic.from_scratch(REPO / "config" / "policy_tiny.yaml", seed=0).to(device)
    return policy, (torch.cuda.synchronize if device.startswith("cuda") else (lambda: None))


def act_times(slots: int, steps: int, device: str) -> tuple[float, float]:
    """(ms per step of all slots one episode at a time, ms batched) for the tiny SafeVLA, mid-episode."""
    policy, sync = _tiny_policy(device)
    rng = np.random.default_rng(0)
    frame = lambda: rng.integers(0, 256, (224, 396, 3), dtype=np.uint8)  # noqa: E731
    with torch.no_grad():
        obs = policy.encode([SimObservation(frame(), frame(), INSTRUCTIONS[e % len(INSTRUCTIONS)], False)
                             for e in range(slots)])
        alone = [policy.model.start_episode(ids, torch.ones_like(ids))
                 for ids in (torch.tensor([o.tokens], device=device) for o in obs)]
        prev = torch.zeros(1, dtype=torch.long, device=device)
        sync()
        start = time.perf_counter()
        for t in range(steps):
            for o, episode in zip(obs, alone):
                policy.model.step(episode, {n: f[None].to(device) for n, f in o.features.items()}, prev,
                                  torch.zeros_like(prev), torch.tensor([t], device=device))
        sync()
        one_by_one = (time.perf_counter() - start) / steps
        policy.begin_episodes(range(slots), slots)
        start = time.perf_counter()
        for t in range(steps):
            policy.act(obs, torch.zeros(slots, dtype=torch.long), torch.full((slots,), t))
        sync()
        batched = (time.perf_counter() - start) / steps
    return one_by_one * 1e3, batched * 1e3


def update_times(context: int, trained: int, repeats: int, device: str) -> tuple[float, float]:
    """(s per forward+backward with every step encoded with gradient, s with the context frozen and the padding
    skipped) for a minibatch of two episodes of one instruction: ``context`` steps from earlier rollouts plus
    ``trained`` new ones, and a fresh ``trained // 2``-step episode padded to the first's length."""
    policy, sync = _tiny_policy(device)
    rng = np.random.default_rng(0)

    def episode(steps: int) -> list:
        frames = [rng.integers(0, 256, (224, 396, 3), dtype=np.uint8) for _ in range(2 * steps)]
        return policy.encode([SimObservation(frames[2 * i], frames[2 * i + 1], INSTRUCTIONS[0], False)
                              for i in range(steps)])

    segments = [Segment(episode(context + trained), [0] * (context + trained), context),
                Segment(episode(trained // 2), [0] * (trained // 2))]
    fast = policy.sequence_inputs(segments)
    every_step = {k: v for k, v in fast.items() if k not in ("real_steps", "frozen_steps")}

    def best_of(inputs: dict) -> float:
        best = float("inf")
        for _ in range(repeats):
            policy.zero_grad()
            sync()
            start = time.perf_counter()
            out = policy.model.forward_sequence(**inputs)
            (out.logits.sum() + out.reward_value.sum() + out.cost_value.sum()).backward()
            sync()
            best = min(best, time.perf_counter() - start)
        return best

    return best_of(every_step), best_of(fast)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke check of the numbers)")
    parser.add_argument("--toy-only", action="store_true", help="skip the MuJoCo row and the acting table")
    parser.add_argument("--device", default="cpu", help="torch device of the learner in every table (e.g. cuda)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    toy = load_train_config(REPO / "config" / "train_toy.yaml")
    cases = [("toy CMDP, MLP", toy, 2000 if args.quick else 20000, 5 if args.quick else 50)]
    if not args.toy_only:
        smoke = load_train_config(REPO / "config" / "train_smoke.yaml")
        smoke = dataclasses.replace(smoke, env=dataclasses.replace(smoke.env, max_episode_steps=500),
                                    ppo=dataclasses.replace(smoke.ppo, rollout_steps=8 if args.quick else 32,
                                                            epochs=1 if args.quick else 4))
        cases.append(("MuJoCo, tiny SafeVLA", smoke, 20 if args.quick else 100, 1 if args.quick else 3))
    phases = (*ROLLOUT_PHASES, "update_s")
    print(f"{'case':<22} {'raw steps/s':>12} {'train steps/s':>14} {'ratio':>7} "
          + " ".join(f"{p.removesuffix('_s'):>7}" for p in phases))
    for name, config, raw_steps, updates in cases:
        config = dataclasses.replace(config, device=args.device)
        raw = raw_rate(config, raw_steps)
        rate, shares = train_rate(config, updates)
        print(f"{name:<22} {raw:>12.1f} {rate:>14.1f} {rate / raw:>7.3f} "
              + " ".join(f"{shares[p]:>7.0%}" for p in phases))
    print(f"ratio = training steps/s (learner on {args.device}) over the raw rate of one environment (1 CPU thread, "
          "envs in-process); "
          "act / env / encode / update = shares of training time (the rest: sampling and bookkeeping)")
    if args.toy_only:
        return
    print(f"\n{'slots':>6} {'one by one ms':>14} {'batched ms':>11} {'speed-up':>9}")
    for slots in (2, 14):
        alone, batched = act_times(slots, 5 if args.quick else 40, args.device)
        print(f"{slots:>6} {alone:>14.1f} {batched:>11.1f} {alone / batched:>8.2f}x")
    print(f"acting for every slot of a rollout step, tiny SafeVLA, 4 instruction lengths, on {args.device} "
          "(1 CPU thread)")
    print(f"\n{'context':>8} {'trained':>8} {'every step s':>13} {'frozen context s':>17} {'speed-up':>9}")
    for context, trained in ((0, 64), (200, 64)):
        every_step, fast = update_times(context, trained, 1 if args.quick else 3, args.device)
        print(f"{context:>8} {trained:>8} {every_step:>13.2f} {fast:>17.2f} {every_step / fast:>8.2f}x")
    print(f"one PPO minibatch forward+backward on {args.device}: an episode with `context` steps from earlier rollouts "
          "and `trained` new ones,\nplus a fresh half-length episode padded to it; baseline: every step encoded with "
          "gradient")


if __name__ == "__main__":
    main()
