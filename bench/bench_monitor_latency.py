"""End-to-end latency cmd_vel_in -> cmd_vel through the safety monitor, against a bare relay.

Both run as their own processes in one leased, loopback-only DDS domain, measured in the same run with
interleaved ping-pongs (one twist to the relay, wait for it, one to the monitor, wait for it), so load on
the machine hits both alike. Sensors (scan with a wall 5 m away, odometry, joint states) are published at
20 Hz throughout so the monitor runs its full path: freshness checks, the obstacle memory snapshot and the
shield's prediction. The monitor forwards an allowed twist from its subscription callback (the timer still
enforces every timeout), which is what is measured here.

    python bench/bench_monitor_latency.py [--quick] [--samples N]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState, LaserScan

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from safevla_node.dds import DomainLease  # noqa: E402
from safevla_node.nodes import conversions as conv  # noqa: E402
from safevla_node.safety.monitor_types import OdometryData  # noqa: E402
from sim_bridge.interface import LaserScanData  # noqa: E402

GOAL_ADDED_MS = 2.0
JOINTS = {"joint_lift": 0.6, "wrist_extension": 0.1, "joint_wrist_yaw": 0.0, "gripper_aperture": 0.05}


def start(args: list[str], lease: DomainLease) -> subprocess.Popen:
    env = lease.env()
    env["PYTHONPATH"] = f"{REPO}:{env.get('PYTHONPATH', '')}".rstrip(":")
    return subprocess.Popen([sys.executable, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)


class Pinger(Node):
    """Sends numbered twists and records when each comes back; publishes the monitor's sensors."""

    def __init__(self, context: Context) -> None:
        super().__init__("latency_bench", context=context)
        self.out = {"relay": self.create_publisher(Twist, "relay/cmd_vel_in", 10),
                    "monitor": self.create_publisher(Twist, "cmd_vel_in", 10)}
        self.arrived: dict[str, dict[int, float]] = {"relay": {}, "monitor": {}}
        for path, topic in (("relay", "relay/cmd_vel"), ("monitor", "cmd_vel")):
            self.create_subscription(Twist, topic, lambda m, p=path: self._back(p, m), 100)
        self.scan_pub = self.create_publisher(LaserScan, "scan", 10)
        self.odom_pub = self.create_publisher(Odometry, "odom", 10)
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        ranges = np.full(360, 5.0, dtype=np.float32)
        self.scan = LaserScanData(-math.pi, 2 * math.pi / 360, 0.05, 10.0, ranges)
        self.create_timer(0.05, self._sensors)

    def _back(self, path: str, msg: Twist) -> None:
        seq = round(msg.angular.z * 1e5)
        if msg.linear.x > 0 and seq not in self.arrived[path]:
            self.arrived[path][seq] = time.perf_counter()

    def _sensors(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.scan_pub.publish(conv.scan_to_msg(self.scan, stamp, "laser"))
        self.odom_pub.publish(conv.odom_to_msg(OdometryData(0.0, 0.0, 0.0), stamp))
        self.joint_pub.publish(conv.joint_state_to_msg(JOINTS, stamp))

    def send(self, path: str, seq: int) -> None:
        msg = Twist()
        msg.linear.x, msg.angular.z = 0.1, seq * 1e-5
        self.out[path].publish(msg)


def spin_until(executor: SingleThreadedExecutor, done, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            return False
        executor.spin_once(timeout_sec=0.001)
    return True


def measure(samples: int) -> dict[str, np.ndarray]:
    with DomainLease() as lease:
        relay = start(["bench/relay_node.py", "--ros-args", "-r", "cmd_vel_in:=relay/cmd_vel_in",
                       "-r", "cmd_vel:=relay/cmd_vel"], lease)
        monitor = start(["-m", "safevla_node.nodes.safety_monitor"], lease)
        context = Context()
        rclpy.init(context=context, domain_id=lease.domain_id)
        node = Pinger(context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        latencies: dict[str, list[float]] = {"relay": [], "monitor": []}
        try:
            for path in ("relay", "monitor"):  # warm-up: discovery, fresh sensors, first allowed twist
                seq = 0
                ok = False
                deadline = time.perf_counter() + 30.0
                while not ok and time.perf_counter() < deadline:
                    seq -= 1
                    node.send(path, seq)
                    ok = spin_until(executor, lambda p=path, s=seq: s in node.arrived[p], 0.2)
                if not ok:
                    raise RuntimeError(f"{path} never answered; is the node running?")
            for seq in range(1, samples + 1):
                for path in ("relay", "monitor"):
                    sent = time.perf_counter()
                    node.send(path, seq)
                    if spin_until(executor, lambda p=path, s=seq: s in node.arrived[p], 0.5):
                        latencies[path].append(node.arrived[path][seq] - sent)
                executor.spin_once(timeout_sec=0.002)  # let the sensor timer run between pairs
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown(context=context)
            for proc in (relay, monitor):
                proc.send_signal(2)
                proc.wait(timeout=10)
        return {path: np.asarray(values) * 1e3 for path, values in latencies.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 samples instead of 1000")
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    samples = args.samples or (100 if args.quick else 1000)
    ms = measure(samples)
    print(f"cmd_vel_in -> cmd_vel round trip over DDS (loopback), {samples} interleaved samples per path")
    print(f"{'path':<10}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for path, values in ms.items():
        p50, p99 = np.percentile(values, 50), np.percentile(values, 99)
        print(f"{path:<10}{len(values):>6}{p50:>10.3f}{p99:>10.3f}{values.mean():>10.3f}")
    relay50, mon50 = np.percentile(ms["relay"], 50), np.percentile(ms["monitor"], 50)
    relay99, mon99 = np.percentile(ms["relay"], 99), np.percentile(ms["monitor"], 99)
    print(f"added by the monitor: p50 {mon50 - relay50:+.3f} ms (x{mon50 / relay50:.2f}), "
          f"p99 {mon99 - relay99:+.3f} ms (x{mon99 / relay99:.2f}); goal p50 added < {GOAL_ADDED_MS} ms: "
          f"{'met' if mon50 - relay50 < GOAL_ADDED_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
