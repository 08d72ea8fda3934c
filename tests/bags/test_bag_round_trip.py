"""Round trip: record a running graph, audit the bag, replay it into a fresh monitor node: same verdicts.

Graph: the test publishes a laser scan (10 Hz) and a forward twist on cmd_vel_in (10 Hz); an obstacle
0.35 m ahead appears for the middle second. A safety monitor node judges it live; the recorder records
its inputs and its safety_state. The audit of that bag and a fresh monitor fed by ``safevla replay`` must
both stop for the obstacle (category collision) over the same stretch of bag time as the live monitor,
and allow before and after it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from rclpy.qos import QoSProfile
from sensor_msgs.msg import LaserScan

from safevla_node.bags.adapters import stamp_s
from safevla_node.bags.audit import AuditConfig, run_audit
from safevla_node.bags.reader import open_bag
from safevla_node.dds import DomainLease
from safevla_node.nodes.conversions import verdict_from_status
from safevla_node.safety.monitor import MonitorConfig
from safevla_node.safety.types import Category, VerdictKind
from tests.ros_harness import REPO_ROOT, RosTestClient, ros_client, running_node

pytestmark = [pytest.mark.ros, pytest.mark.slow]
MONITOR = "safevla_node.nodes.safety_monitor"
MONITOR_PARAMS = {"required_sources": ["scan"]}
OBSTACLE_S = (1.5, 2.5)  # bag-relative seconds with the obstacle in front
DURATION_S = 4.0
TOLERANCE_S = 0.3  # a scan period, a control period and DDS jitter


def _scan(client: RosTestClient, obstacle: bool) -> LaserScan:
    msg = LaserScan()
    msg.header.stamp = client.node.get_clock().now().to_msg()
    msg.header.frame_id = "laser"
    msg.angle_min, msg.angle_max, msg.angle_increment = -np.pi, np.pi, 2 * np.pi / 359
    msg.range_min, msg.range_max = 0.05, 10.0
    ranges = np.full(360, np.inf, dtype=np.float32)
    if obstacle:
        ranges[175:186] = 0.35  # straight ahead
    msg.ranges = ranges.tolist()
    return msg


def _drive_graph(client: RosTestClient) -> None:
    scan_pub = client.node.create_publisher(LaserScan, "/scan", 10)
    cmd_pub = client.node.create_publisher(Twist, "/cmd_vel_in", 10)
    client.spin_until(lambda: scan_pub.get_subscription_count() >= 2 and cmd_pub.get_subscription_count() >= 2, 15.0,
                      "monitor and recorder subscribe to /scan and /cmd_vel_in")
    client.spin_for(0.5)
    twist = Twist()
    twist.linear.x = 0.2
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < DURATION_S:
        scan_pub.publish(_scan(client, OBSTACLE_S[0] <= elapsed < OBSTACLE_S[1]))
        cmd_pub.publish(twist)
        client.spin_for(0.1)
    client.spin_for(0.5)


def _collision_window(series: list[tuple[float, int, Category | None]]) -> tuple[float, float]:
    """First and last time of a STOP for a predicted collision (stale-scan STOPs after the run are FAULT)."""
    stops = [t for t, kind, category in series if kind == int(VerdictKind.STOP) and category is Category.COLLISION]
    assert stops, f"no collision STOP in {series}"
    return min(stops), max(stops)


def _state_series(bag: Path) -> list[tuple[float, int, Category | None]]:
    """The live monitor's safety_state recorded in the bag, at bag-relative receive times."""
    with open_bag(bag) as reader:
        start = reader.start_ns
        series = []
        for message in reader.messages(["/safevla/safety_state"]):
            values = {kv.key: kv.value for kv in reader.decode(message).values}
            series.append(((message.time_ns - start) * 1e-9, int(VerdictKind[values["verdict"].upper()]),
                           Category(values["category"]) if values["category"] else None))
    return series


def test_recorded_graph_replayed_into_a_fresh_monitor_gets_the_verdicts_of_its_audit(tmp_path: Path):
    bag = tmp_path / "graph"
    with DomainLease() as live:
        with running_node(MONITOR, live, params=MONITOR_PARAMS), running_node(
                "safevla_node.nodes.recorder", live, params={
                    "output": str(bag), "topics": ["/scan", "/cmd_vel_in", "/safevla/safety_state"]}), \
                ros_client(live) as client:
            _drive_graph(client)

    # The audit of the recording.
    report = run_audit(bag, AuditConfig(command_topics=("/cmd_vel_in",)),
                       monitor_config=MonitorConfig(required_sources=("scan",)))
    with open_bag(bag) as reader:
        first = next(reader.messages(["/scan"]))
        first_scan = (first.time_ns - reader.start_ns) * 1e-9
        first_stamp = stamp_s(reader.decode(first))
    audit_series = [(i.start_s, int(VerdictKind[i.kind]), i.category) for i in report.intervals] + [
        (i.end_s, int(VerdictKind[i.kind]), i.category) for i in report.intervals]
    audit_window = _collision_window(audit_series)
    assert audit_window[0] == pytest.approx(OBSTACLE_S[0] + first_scan, abs=TOLERANCE_S)
    assert audit_window[1] == pytest.approx(OBSTACLE_S[1] + first_scan, abs=TOLERANCE_S)

    # What the live monitor said, recorded in the same bag.
    live_window = _collision_window(_state_series(bag))
    assert audit_window[0] == pytest.approx(live_window[0], abs=TOLERANCE_S)
    assert audit_window[1] == pytest.approx(live_window[1], abs=TOLERANCE_S + 1.0)  # state repeats at 1 Hz

    # Replay into a fresh monitor; map its safety_state arrivals to bag time through the replayed scans.
    with DomainLease() as fresh:
        scans: list[tuple[float, float]] = []  # (arrival, header stamp) of replayed scans
        states: list[tuple[float, int, Category | None]] = []

        def on_state(msg: DiagnosticStatus) -> None:
            verdict, _ = verdict_from_status(msg)
            states.append((time.monotonic(), int(verdict.kind), verdict.category))

        with running_node(MONITOR, fresh, params=MONITOR_PARAMS), ros_client(fresh) as client:
            client.node.create_subscription(
                LaserScan, "/scan", lambda m: scans.append((time.monotonic(), stamp_s(m))), QoSProfile(depth=100))
            client.node.create_subscription(DiagnosticStatus, "/safevla/safety_state", on_state, QoSProfile(depth=100))
            # The replay waits for the monitor to subscribe, not for this client to hear the monitor: wait for
            # its state (repeated at 1 Hz) first, or a loaded machine matches us after the collision STOP.
            client.spin_until(lambda: states, 30.0, "the fresh monitor's first safety_state")
            env = fresh.env()
            env["PYTHONPATH"] = f"{REPO_ROOT}:{env.get('PYTHONPATH', '')}".rstrip(":")
            replay = subprocess.Popen(
                [sys.executable, "-m", "safevla_node.cli", "replay", str(bag), "--topics", "/scan", "/cmd_vel_in",
                 "--wait-for-subscribers", "20", "--delay", "0.5"],
                env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            client.spin_until(lambda: replay.poll() is not None, 30.0, "replay ends")
            client.spin_for(0.5)
            output, _ = replay.communicate(timeout=10)
        assert replay.returncode == 0, output
    # Monotonic time of bag time 0, from the first scan this client received: its recorded header stamp says
    # which scan of the bag it is, so a subscription that matched late (missing the first scans) costs nothing.
    arrival, stamp = scans[0]
    offset = arrival - (first_scan + stamp - first_stamp)
    replay_window = _collision_window([(t - offset, kind, category) for t, kind, category in states])
    assert replay_window[0] == pytest.approx(audit_window[0], abs=TOLERANCE_S)
    assert replay_window[1] == pytest.approx(audit_window[1], abs=TOLERANCE_S + 1.0)  # state repeats at 1 Hz
