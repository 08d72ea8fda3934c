"""Latency of ``Shield.check`` on a base twist against 100 / 1,000 / 10,000 obstacle points.

Baselines measured in the same run on the same points:
- floor: one ``np.hypot`` over all points (the least any per-point decision can cost);
- naive: the shield's sweep kernel without the bounding-circle prefilter (footprint and both arm segments
  against every point at every sampled pose), i.e. what the check would cost if it judged all points.

Points are uniform in the obstacle memory's 4 m window around the robot (none inside the footprint), the
command a curving twist with the arm partly out, so the footprint and the arm both sweep.

Run: ``python bench/bench_shield.py`` (``--quick`` for fewer iterations).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Measure this checkout, not whatever copy of the package the venv was installed from.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safevla_node.safety.geometry import arm_segments, segment_distance, unicycle_poses
from safevla_node.safety.shield import Shield
from safevla_node.safety.types import RobotState, TwistCommand, WorldEstimate

ROBOT = RobotState(lift=0.6, arm_extension=0.1, wrist_yaw=0.0)
COMMAND = TwistCommand(0.2, 0.3)


def scattered_points(n: int, rng: np.random.Generator) -> np.ndarray:
    radius = np.sqrt(rng.uniform(0.35**2, 4.0**2, n))
    angle = rng.uniform(-np.pi, np.pi, n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def percentiles_us(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(50, iterations)):  # warm-up
        fn()
    samples = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - start
    return float(np.percentile(samples, 50)) / 1e3, float(np.percentile(samples, 99)) / 1e3


def naive_kernel(shield: Shield, points: np.ndarray) -> Callable[[], np.ndarray]:
    """The sweep's distance work over ALL points, with the poses the check would sample."""
    c = shield.config
    brake = max(abs(COMMAND.linear_x) / c.max_decel_mps2, abs(COMMAND.angular_z) / c.max_angular_decel_rps2)
    taus = shield._taus(WorldEstimate(ROBOT), COMMAND.linear_x, COMMAND.angular_z, c.horizon_s + brake / 2.0)

    def run() -> np.ndarray:
        poses = unicycle_poses((ROBOT.x, ROBOT.y, ROBOT.yaw), COMMAND.linear_x, COMMAND.angular_z, taus)
        mast, wrist, tip = arm_segments(poses, c.mast_xy_m, c.arm_retracted_length_m + ROBOT.arm_extension,
                                        ROBOT.wrist_yaw, c.gripper_length_m)
        body = np.minimum(np.hypot(points[None, :, 0] - poses[:, 0:1], points[None, :, 1] - poses[:, 1:2])
                          - c.footprint_radius_m, segment_distance(mast, wrist, points) - c.arm_radius_m)
        return np.minimum(body, segment_distance(wrist, tip, points) - c.gripper_radius_m).min(axis=0)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 iterations per case instead of 2,000")
    args = parser.parse_args()
    iterations = 200 if args.quick else 2000  # the slow naive baseline runs a fifth of them
    shield = Shield()
    rng = np.random.default_rng(0)
    print(f"Shield.check(TwistCommand({COMMAND.linear_x}, {COMMAND.angular_z})), {iterations} iterations, "
          f"times in microseconds")
    header = ("points", "check p50", "check p99", "floor p50", "naive p50", "naive p99", "check/floor",
              "check/naive", "verdict")
    print(" | ".join(f"{h:>11}" for h in header))
    for n in (100, 1_000, 10_000):
        points = scattered_points(n, rng)
        world = WorldEstimate(ROBOT, points, np.ones(n, dtype=bool))
        check_p50, check_p99 = percentiles_us(lambda: shield.check(world, COMMAND), iterations)
        floor = lambda: np.hypot(points[:, 0] - ROBOT.x, points[:, 1] - ROBOT.y)  # noqa: E731
        floor_p50, _ = percentiles_us(floor, iterations)
        naive_p50, naive_p99 = percentiles_us(naive_kernel(shield, points), max(50, iterations // 5))
        verdict = shield.check(world, COMMAND).kind.name
        row = (f"{n:,}", f"{check_p50:.1f}", f"{check_p99:.1f}", f"{floor_p50:.1f}", f"{naive_p50:.1f}",
               f"{naive_p99:.1f}", f"{check_p50 / floor_p50:.1f}x", f"{check_p50 / naive_p50:.2f}x", verdict)
        print(" | ".join(f"{cell:>11}" for cell in row))


if __name__ == "__main__":
    main()
