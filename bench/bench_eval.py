"""Evaluation throughput of checkpoint episodes with worker processes, against one worker in the same run.

    python bench/bench_eval.py [--quick]

``safevla eval --workers N`` gives each worker process its share of the cores for torch (``OMP_NUM_THREADS``
= cores // N). The row "torch default threads" exports ``OMP_NUM_THREADS`` = cores instead, which is what
every worker took before: one intra-op thread per core in each worker, spinning on cores the others hold.
Columns: environment steps per wall second over the whole run (worker start-up and model loading included)
and the ratio to the one-worker baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from safevla_node.config import from_mapping  # noqa: E402
from safevla_node.evaluation.runner import load_records, run_suite, worker_threads  # noqa: E402
from safevla_node.evaluation.suite import SuiteConfig  # noqa: E402


def suite(seeds: int, steps: int) -> SuiteConfig:
    """The shipped checkpoint on easy ObjectNav homes, shield off, rendering every step."""
    return from_mapping(SuiteConfig, {
        "name": "bench-eval", "step_budget": steps,
        "policies": [{"name": "bc_tiny", "kind": "checkpoint", "checkpoint": "shipped"}],
        "blocks": [{"name": "b", "tasks": ["objectnav"], "difficulties": ["easy"], "shield": [False],
                    "seeds": seeds}],
    })


def steps_per_second(config: SuiteConfig, workers: int, omp_threads: int | None) -> float:
    """Run ``config`` in a fresh folder; environment steps per wall second."""
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    if omp_threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(omp_threads)
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run_suite(config, out, workers=workers, on_progress=lambda _progress: None)
            wall = time.perf_counter() - start
            return sum(r.steps for r in load_records(out).values()) / wall
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 episodes of 20 steps instead of 8 of 40")
    args = parser.parse_args()
    config = suite(4, 20) if args.quick else suite(8, 40)
    cores = os.cpu_count() or 1
    workers = max(2, cores)
    print(f"{cores} cores; {len(config.blocks[0].tasks) * config.blocks[0].seeds} episodes of at most "
          f"{config.step_budget} steps, shipped checkpoint, 396x224 frames")
    baseline = steps_per_second(config, 1, None)
    rows = [
        ("1 worker (baseline)", baseline),
        (f"{workers} workers, torch default threads ({cores} each)", steps_per_second(config, workers, cores)),
        (f"{workers} workers, their share ({worker_threads(workers)} each)", steps_per_second(config, workers, None)),
    ]
    print(f"{'run':<48} {'steps/s':>8} {'vs 1 worker':>12}")
    for name, rate in rows:
        print(f"{name:<48} {rate:8.1f} {rate / baseline:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
