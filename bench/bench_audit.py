"""Audit throughput on the real bags, as a multiple of real time, against just reading them.

Baseline (same run, same bags): open the bag and deserialise every message whose type is known — the
IO and decoding any offline tool pays. The audit opens the bag, decodes only the topics it needs and runs
the safety monitor core at its control rate (20 Hz) over them. Each figure is the best of ``--repeat``
runs (the machine is shared). Goal: the audit at >= 50x real time (no policy).

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


def read_all(bag: Path) -> tuple[float, int]:
    """Seconds to open ``bag`` and deserialise every decodable message; and the number deserialised."""
    started = time.perf_counter()
    count = 0
    with open_bag(bag) as reader:
        decodable = {t.name for t in reader.topics if t.decodable}
        for message in reader.messages():
            if message.topic in decodable:
                reader.decode(message)
                count += 1
    return time.perf_counter() - started, count


def audit(bag: Path) -> tuple[float, int]:
    """Seconds for a full audit of ``bag``; and its number of control ticks."""
    started = time.perf_counter()
    report = run_audit(bag)
    return time.perf_counter() - started, len(report.times)


def main() -> None:
    """Print one row per bag."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per bag instead of three")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    logging.disable(logging.WARNING)
    print(f"best of {repeat} run(s); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'bag':<30} {'dur s':>6} {'msgs':>6} {'read s':>7} {'read xRT':>9} {'ticks':>6} {'audit s':>8} "
          f"{'audit xRT':>9} {'audit/read':>10}")
    worst = float("inf")
    for name in BAGS:
        bag = BAGS_DIR / name
        with open_bag(bag) as reader:
            duration = reader.duration_s
        read_s, count = min(read_all(bag) for _ in range(repeat))
        audit_s, ticks = min(audit(bag) for _ in range(repeat))
        worst = min(worst, duration / audit_s)
        print(f"{name:<30} {duration:>6.2f} {count:>6} {read_s:>7.3f} {duration / read_s:>9.0f} {ticks:>6} "
              f"{audit_s:>8.3f} {duration / audit_s:>9.0f} {audit_s / read_s:>10.2f}")
    print(f"slowest audit: {worst:.0f}x real time; goal >= 50x: {'met' if worst >= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
