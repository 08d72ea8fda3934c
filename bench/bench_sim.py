"""MuJoCo simulator throughput: discrete steps per second with and without rendering, per camera resolution,
against the raw ``mj_step`` rate of the same home measured in the same run.

    python bench/bench_sim.py [--quick] [--seed N]

Columns: actions/s (one discrete SafeVLA action = closed-loop motion + cost step), the physics steps those
actions ran per wall second, and that rate as a fraction of bare ``mj_step`` (the overhead of control,
contact bookkeeping, snapshots, costs and rendering). Render-only rows time ``observe(render=True)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

from safevla_node.actions import ACTION_BY_CODE  # noqa: E402
from sim_bridge.interface import TaskKind  # noqa: E402
from sim_bridge.mujoco import MujocoBackend  # noqa: E402

#: A mix of base and arm actions that keeps the robot near its start.
MIX = [ACTION_BY_CODE[c].index for c in ("m", "l", "b", "r", "ls", "rs", "zp", "zm", "yp", "ym")]
RESOLUTIONS = ((396, 224), (224, 224), (640, 480))


def raw_step_rate(backend: MujocoBackend, seconds: float) -> float:
    """Bare mj_step calls per second on the backend's current model (a copy of its data)."""
    sim = backend.physics
    model, data = sim.model, mujoco.MjData(sim.model)
    data.qpos[:] = sim.data.qpos
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            mujoco.mj_step(model, data)
        n += 200
    return n / (time.perf_counter() - start)


def action_rate(backend: MujocoBackend, n: int, render: bool) -> tuple[float, float]:
    """(actions per second, physics steps per wall second) over ``n`` actions."""
    sim = backend.physics
    t0, start = sim.data.time, time.perf_counter()
    for i in range(n):
        backend.execute_action(MIX[i % len(MIX)], render=render)
    wall = time.perf_counter() - start
    physics_steps = (sim.data.time - t0) / sim.model.opt.timestep
    return n / wall, physics_steps / wall


def render_rate(backend: MujocoBackend, n: int) -> float:
    """observe(render=True) calls per second at a standing instant: two camera renders and the lidar (the
    snapshot of the instant is cached)."""
    start = time.perf_counter()
    for _ in range(n):
        backend.observe(render=True)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a few seconds in all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_actions = 20 if args.quick else 100
    seconds = 0.5 if args.quick else 2.0
    rows: list[tuple[str, float, float]] = []

    backend = MujocoBackend(depth=False)
    backend.reset(args.seed, TaskKind.PICKUP)
    raw = raw_step_rate(backend, seconds)
    timestep_ms = backend.physics.model.opt.timestep * 1e3
    print(f"MUJOCO_GL={os.environ['MUJOCO_GL']}  timestep={timestep_ms:.0f} ms  seed={args.seed}  "
          f"actions/run={n_actions}")
    print(f"baseline: raw mj_step  {raw:10.0f} steps/s\n")
    rows.append(("actions, no render", *action_rate(backend, n_actions, render=False)))
    backend.close()
    for width, height in RESOLUTIONS:
        for depth in (False, True):
            sim = MujocoBackend(camera_size=(width, height), depth=depth)
            sim.reset(args.seed, TaskKind.PICKUP)
            size = f"{width}x{height}{' +depth' if depth else ''}"
            rows.append((f"actions, render {size}", *action_rate(sim, n_actions, render=True)))
            rows.append((f"observe only {size}", render_rate(sim, n_actions), 0.0))
            sim.close()

    print(f"{'case':36s} {'calls/s':>9s} {'physics steps/s':>16s} {'vs raw mj_step':>15s}")
    for label, rate, steps in rows:
        ratio = f"{steps / raw:14.2f}x" if steps else f"{'':>15s}"
        physics = f"{steps:16.0f}" if steps else f"{'':>16s}"
        print(f"{label:36s} {rate:9.1f} {physics} {ratio}")


if __name__ == "__main__":
    main()
