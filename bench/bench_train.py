"""Training throughput: environment steps per second of training (rollout + update) against raw stepping.

Baseline, measured in the same run: the environment's own ``execute_action`` / ``step`` rate with random
actions and no policy. Then full training updates (policy act, sampling, buffer, GAE, PPO epochs). Rows:
the toy CMDP (learner overhead alone) and, unless ``--toy-only``, the embedded MuJoCo simulator with the tiny
SafeVLA from scratch.

    python bench/bench_train.py [--quick] [--toy-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from policies.training.config import TrainConfig, load_train_config
from policies.training.factory import make_env_factories
from policies.training.trainer import Trainer

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


def train_rate(config: TrainConfig, updates: int) -> tuple[float, float, float]:
    """(steps/s, rollout share, update share) over ``updates`` updates after one warm-up update."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, out, resume=False)
        try:
            trainer.train_one_update()
            rows = [trainer.train_one_update() for _ in range(updates)]
        finally:
            trainer.close()
    steps = sum(config.env.num_envs * config.ppo.rollout_steps for _ in rows)
    rollout, update = sum(r["rollout_s"] for r in rows), sum(r["update_s"] for r in rows)
    return steps / (rollout + update), rollout / (rollout + update), update / (rollout + update)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke check of the numbers)")
    parser.add_argument("--toy-only", action="store_true", help="skip the MuJoCo row")
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
    print(f"{'case':<22} {'raw steps/s':>12} {'train steps/s':>14} {'ratio':>7} {'rollout':>8} {'update':>7}")
    for name, config, raw_steps, updates in cases:
        raw = raw_rate(config, raw_steps)
        rate, rollout, update = train_rate(config, updates)
        print(f"{name:<22} {raw:>12.1f} {rate:>14.1f} {rate / raw:>7.3f} {rollout:>8.0%} {update:>7.0%}")
    print("ratio = training steps/s over the raw rate of one environment (1 CPU thread, envs in-process)")


if __name__ == "__main__":
    main()
