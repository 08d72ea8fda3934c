"""Replay timing error: when do a bag's messages arrive, against when the bag says they should?

A subscriber in another process stamps every message's arrival (CLOCK_MONOTONIC is shared by all
processes). The error of a message is its arrival minus (playback start + its scheduled offset); it holds
the DDS latency (a constant, ~0.3 ms here) plus the pacing jitter. Two pacers replay the same bag in
the same run: ours (sleep until 1 ms before the deadline, then spin) and the baseline (plain
``time.sleep`` to the deadline). Goal: p99 < 2 ms.

    python bench/bench_replay.py [--quick] [--bag DIR] [--rate R]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from safevla_node.bags.reader import open_bag  # noqa: E402
from safevla_node.bags.replay import Pacer, ReplayConfig, ReplayPlan  # noqa: E402
from safevla_node.dds import DomainLease  # noqa: E402

DEFAULT_BAG = Path("/work/shared/data/bags/tb3_mini_roomba_scan_cmdvel")


def subscribe(topics: list[str], types: list[str], out: Path) -> None:
    """Child process: a normal node (blocking in its wait set) that stamps arrivals per topic until SIGINT,
    then writes them as JSON."""
    import rclpy  # noqa: PLC0415
    from rclpy.executors import ExternalShutdownException  # noqa: PLC0415
    from rclpy.qos import QoSProfile  # noqa: PLC0415

    from safevla_node.nodes.bag_interop import import_message_type  # noqa: PLC0415

    rclpy.init()
    node = rclpy.create_node("bench_replay_subscriber")
    arrivals: dict[str, list[float]] = defaultdict(list)
    for topic, msgtype in zip(topics, types):
        node.create_subscription(import_message_type(msgtype), topic,
                                 lambda _raw, t=topic: arrivals[t].append(time.monotonic()), QoSProfile(depth=1000),
                                 raw=True)
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    out.write_text(json.dumps(arrivals))


def replay_once(bag: Path, config: ReplayConfig, pacer: Pacer, lease: DomainLease) -> tuple[np.ndarray, np.ndarray]:
    """Replay ``bag`` to a subscriber process; returns the arrival errors and publish lateness (s)."""
    import rclpy  # noqa: PLC0415
    from rclpy.context import Context  # noqa: PLC0415

    from safevla_node.nodes.replayer import ReplayerNode  # noqa: PLC0415

    with open_bag(bag) as reader, tempfile.TemporaryDirectory() as tmp:
        plan = ReplayPlan(reader, config)
        expected: dict[str, list[float]] = defaultdict(list)
        for event in plan.events():
            expected[event.topic].append(event.offset_s)
        out = Path(tmp) / "arrivals.json"
        env = lease.env()
        env["PYTHONPATH"] = f"{REPO_ROOT}:{env.get('PYTHONPATH', '')}".rstrip(":")
        child = subprocess.Popen(
            [sys.executable, __file__, "--subscribe", str(out), "--topics", *plan.types, "--types",
             *plan.types.values()], env=env, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        context = Context()
        rclpy.init(context=context, domain_id=lease.domain_id)
        try:
            node = ReplayerNode(plan, context=context)
            deadline = time.monotonic() + 10.0
            while any(p.get_subscription_count() == 0 for p in node.publishers_by_topic.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the subscriber process was not discovered within 10 s")
                time.sleep(0.05)
            time.sleep(0.5)
            node.play(pacer)
            lateness = np.asarray(node.lateness_s)
            time.sleep(0.5)
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)
        arrivals = json.loads(out.read_text())
    errors = []
    for topic, offsets in expected.items():
        got = arrivals.get(topic, [])
        if len(got) != len(offsets):
            raise RuntimeError(f"{topic}: {len(got)} of {len(offsets)} messages arrived")
        errors.extend(a - (pacer.started_at + o) for a, o in zip(got, offsets))
    return np.asarray(errors), lateness


def main() -> None:
    """Run both pacers on the bag and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds per pacer)")
    parser.add_argument("--bag", type=Path, default=DEFAULT_BAG)
    parser.add_argument("--rate", type=float, default=None, help="playback rate (default 4, quick 10)")
    parser.add_argument("--repeat", type=int, default=None, help="alternating runs per pacer (default 3, quick 1)")
    parser.add_argument("--subscribe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--topics", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--types", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscribe:
        subscribe(args.topics, args.types, args.subscribe)
        return
    rate = args.rate or (10.0 if args.quick else 4.0)
    repeat = args.repeat or (1 if args.quick else 3)
    config = ReplayConfig(rate=rate)
    pacers = {
        "plain sleep (baseline)": lambda: Pacer(spin_s=0.0, poll_s=3600.0, clock=time.monotonic),
        "sleep + 1 ms spin (ours)": lambda: Pacer(spin_s=1e-3, clock=time.monotonic),
    }
    print(f"bag {args.bag.name} at rate {rate}, {repeat} alternating run(s) per pacer; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs. pub: publish start - deadline (the replayer's "
          "own error); arr: arrival in the subscriber process - deadline (adds DDS latency and the "
          "subscriber's wake-up). All in ms.")
    samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in pacers}
    with DomainLease() as lease:
        for _ in range(repeat):  # alternate, so both pacers see the same machine load
            for name, make in pacers.items():
                samples[name].append(replay_once(args.bag, config, make(), lease))
    print(f"{'pacer':<26} {'msgs':>5} {'pub p50':>8} {'pub p99':>8} {'arr p50':>8} {'arr p99':>8} {'arr max':>8}")
    p99 = {}
    for name, runs in samples.items():
        arrival = np.concatenate([a for a, _ in runs]) * 1e3
        publish = np.concatenate([p for _, p in runs]) * 1e3
        p99[name] = (np.percentile(publish, 99), np.percentile(arrival, 99))
        print(f"{name:<26} {len(arrival):>5} {np.percentile(publish, 50):>8.3f} {p99[name][0]:>8.3f} "
              f"{np.percentile(arrival, 50):>8.3f} {p99[name][1]:>8.3f} {arrival.max():>8.3f}")
    (base_pub, base_arr), (ours_pub, ours_arr) = p99.values()
    print(f"p99 publish lateness baseline/ours {base_pub / ours_pub:.1f}x; p99 arrival error baseline/ours "
          f"{base_arr / ours_arr:.1f}x; goal arrival p99 < 2 ms: {'met' if ours_arr < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
