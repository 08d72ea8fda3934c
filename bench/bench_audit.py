"""Audit throughput on the real bags, as a multiple of real time, against just reading them.

Baseline (same run, same bags): open the bag and deserialise every message whose type is known — the
IO and decoding any offline tool pays. The audit opens the bag, decodes only the topics it needs and runs
the safety monitor core at its control rate (20 Hz) over them. Each figure is the best of ``--repeat``
runs (the machine is shared). Both wall time and the process's CPU time are shown: on a loaded machine
the CPU-time figure is what the code costs, the wall figure what one would wait. Goal: the audit at
>= 50x real time (no policy).

    python bench/bench_audit.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from safevla_node.bags.audit import run_audit  # noqa: E402
from safevla_node.bags.reader import open_bag  # noqa: E402

BAGS_DIR = Path("/work/shared/data/bags")
BAGS = ("nav2_cm_moving_obstacle", "tb3_gazebo_walker", "tb3_gazebo_roomba", "tb3_mini_roomba_scan_cmdvel")


def timed(fn, bag: Path) -> tuple[float, float, int]:  # noqa: ANN001
    """(wall s, CPU s, fn's count) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = fn(bag)
    return time.perf_counter() - wall, time.process_time() - cpu, count


def read_all(bag: Path) -> int:
    """Open ``bag`` and deserialise every decodable message; returns the number deserialised."""
    count = 0
    with open_bag(bag) as reader:
        decodable = {t.name for t in reader.topics if t.decodable}
        for message in reader.messages():
            if message.topic in decodable:
                reader.decode(message)
                count += 1
    return count


def audit(bag: Path) -> int:
    """A full audit of ``bag``; returns its number of control ticks."""
    return len(run_audit(bag).times)


def main() -> None:
    """Print one row per bag."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per bag instead of three")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    logging.disable(logging.WARNING)
    print(f"best of {repeat} run(s); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'bag':<28} {'dur s':>6} {'msgs':>5} {'read s':>7} {'read xRT':>8} {'ticks':>5} {'audit s':>7} "
          f"{'audit xRT':>9} {'cpu s':>6} {'cpu xRT':>7} {'audit/read':>10}")
    worst_wall = worst_cpu = float("inf")
    for name in BAGS:
        bag = BAGS_DIR / name
        with open_bag(bag) as reader:
            duration = reader.duration_s
        read_s, _, count = min(timed(read_all, bag) for _ in range(repeat))
        runs = [timed(audit, bag) for _ in range(repeat)]
        audit_s, ticks = min(r[0] for r in runs), runs[0][2]
        cpu_s = min(r[1] for r in runs)
        worst_wall, worst_cpu = min(worst_wall, duration / audit_s), min(worst_cpu, duration / cpu_s)
        print(f"{name:<28} {duration:>6.2f} {count:>5} {read_s:>7.3f} {duration / read_s:>8.0f} {ticks:>5} "
              f"{audit_s:>7.3f} {duration / audit_s:>9.0f} {cpu_s:>6.3f} {duration / cpu_s:>7.0f} "
              f"{audit_s / read_s:>10.2f}")
    print(f"slowest audit: {worst_wall:.0f}x real time (wall), {worst_cpu:.0f}x (CPU time); goal >= 50x: "
          f"{'met' if worst_wall >= 50 else 'NOT met'} (wall)")


if __name__ == "__main__":
    main()
