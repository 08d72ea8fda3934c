"""Simulation bridge throughput: the sim_bridge node (its own process, publishing every stream over DDS)
against stepping the same backend in-process through the same bridge core, measured in the same run.

    python bench/bench_bridge.py [--quick]

Both run as fast as possible (real_time_factor 0) with the node's default stream rates; the figure is simulated
seconds per wall second, and the ratio node / in-process is the cost of ROS conversion and publishing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MUJOCO_GL", "egl")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from safevla_node.dds import DomainLease  # noqa: E402
from sim_bridge.bridge import BridgeConfig, SimBridge  # noqa: E402
from sim_bridge.registry import make_backend  # noqa: E402

CAMERA = (396, 224)


def in_process_rate(seconds: float, render: bool) -> float:
    config = BridgeConfig(task="pickup", seed=3, camera_width=CAMERA[0], camera_height=CAMERA[1], render=render,
                          real_time_factor=0.0)
    bridge = SimBridge(make_backend("mujoco", camera_size=CAMERA), config)
    start_sim = bridge.reset().time
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        bridge.step()
    rate = (bridge.time - start_sim) / (time.perf_counter() - start)
    bridge.backend.close()
    return rate


def node_rate(seconds: float, render: bool) -> float:
    with DomainLease() as lease:
        env = lease.env()
        env["PYTHONPATH"] = str(REPO)
        params = ["-p", "task:=pickup", "-p", "seed:=3", "-p", "real_time_factor:=0.0",
                  "-p", f"render:={'true' if render else 'false'}"]
        proc = subprocess.Popen([sys.executable, "-m", "safevla_node.nodes.sim_bridge", "--ros-args", *params],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        context = Context()
        rclpy.init(context=context, domain_id=lease.domain_id)
        node = Node("bench_bridge_clock", context=context)
        stamps: list[tuple[float, float]] = []
        node.create_subscription(Clock, "/clock", lambda m: stamps.append(
            (time.perf_counter(), m.clock.sec + m.clock.nanosec * 1e-9)), 100)
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.perf_counter() + 60
        while len(stamps) < 20 and time.perf_counter() < deadline:  # start-up and discovery
            executor.spin_once(timeout_sec=0.1)
        first = stamps[-1]
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            executor.spin_once(timeout_sec=0.05)
        last = stamps[-1]
        proc.terminate()
        proc.wait(timeout=20)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    return (last[1] - first[1]) / (last[0] - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    seconds = 4.0 if parser.parse_args().quick else 12.0
    print(f"{'rendering':<10} {'in-process sim s/s':>19} {'node sim s/s':>13} {'node/in-process':>16}")
    for render in (False, True):
        raw = in_process_rate(seconds, render)
        bridged = node_rate(seconds, render)
        print(f"{'on' if render else 'off':<10} {raw:>19.2f} {bridged:>13.2f} {bridged / raw:>16.2f}")


if __name__ == "__main__":
    main()
