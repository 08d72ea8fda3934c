"""Record and replay over real DDS: a recorder node process, the `safevla replay` CLI, a test client."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from geometry_msgs.msg import Twist
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan

from safevla_node.bags.reader import PARTIAL_SPLIT_PREFIX, open_bag
from safevla_node.bags.replay import ReplayConfig, ReplayPlan
from safevla_node.dds import DomainLease
from tests.bags.bag_fixtures import MINI, NAV2, WALKER, requires_bags
from tests.ros_harness import REPO_ROOT, NodeProcess, RosTestClient, ros_client

pytestmark = [pytest.mark.ros, requires_bags]
RECORDER = "safevla_node.nodes.recorder"
DEPTH = QoSProfile(depth=1000)


def _publish_twists(client: RosTestClient, count: int, period_s: float) -> list[float]:
    pub = client.node.create_publisher(Twist, "/cmd_vel", 10)
    client.spin_until(lambda: pub.get_subscription_count() > 0, 10.0, "recorder subscribes to /cmd_vel")
    client.spin_for(0.3)  # the subscription is matched on both sides
    sent = []
    for i in range(count):
        msg = Twist()
        msg.linear.x = float(i)
        pub.publish(msg)
        sent.append(float(i))
        client.spin_for(period_s)
    client.spin_for(0.3)
    return sent


def _recorded_x(bag: Path) -> list[float]:
    with open_bag(bag) as reader:
        return [reader.decode(m).linear.x for m in reader.messages(["/cmd_vel"])]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_recorder_node_records_published_messages_and_finalises_on_signal(ros_domain: DomainLease, tmp_path: Path,
                                                                        sig: signal.Signals):
    bag = tmp_path / "bag"
    proc = NodeProcess(RECORDER, ros_domain, params={"output": str(bag), "topics": ["/cmd_vel"]})
    try:
        with ros_client(ros_domain) as client:
            sent = _publish_twists(client, 40, 0.01)
        proc.proc.send_signal(sig)
        assert proc.proc.wait(timeout=10) == 0, proc.output()
    finally:
        proc.stop()
    assert _recorded_x(bag) == sent
    with open_bag(bag) as reader:
        (topic,) = reader.topics
        assert (topic.name, topic.msgtype, topic.count) == ("/cmd_vel", "geometry_msgs/msg/Twist", 40)
        # the publisher's offered QoS as discovery reports it (DDS does not carry history/depth)
        assert [(q.reliability.name, q.durability.name) for q in topic.qos] == [("RELIABLE", "VOLATILE")]
        assert not reader.warnings
    assert not list(bag.glob(f"{PARTIAL_SPLIT_PREFIX}*"))


def test_sigkilled_recording_is_readable_up_to_its_last_closed_split(ros_domain: DomainLease, tmp_path: Path):
    bag = tmp_path / "bag"
    proc = NodeProcess(RECORDER, ros_domain,
                       params={"output": str(bag), "topics": ["/cmd_vel"], "max_split_duration_s": 0.3})
    try:
        with ros_client(ros_domain) as client:
            sent = _publish_twists(client, 60, 0.02)
            proc.kill()
    finally:
        proc.stop()
    recovered = _recorded_x(bag)
    assert 0 < len(recovered) < len(sent)
    assert recovered == sent[: len(recovered)]  # a clean prefix: closed splits only, in order
    with open_bag(bag) as reader:
        assert any("unfinalised split" in w for w in reader.warnings)


def _replay(lease: DomainLease, *args: str) -> subprocess.Popen[str]:
    env = lease.env()
    env["PYTHONPATH"] = f"{REPO_ROOT}:{env.get('PYTHONPATH', '')}".rstrip(":")
    return subprocess.Popen([sys.executable, "-m", "safevla_node.cli", "replay", *args], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_replay_honours_rate_topics_and_remap_and_keeps_order(ros_domain: DomainLease):
    with open_bag(MINI) as reader:
        plan = ReplayPlan(reader, ReplayConfig(rate=2.0, topics=("scan",), start_offset_s=27.0))
        expected = [(e.offset_s, e.raw) for e in plan.events()]
    received: list[tuple[float, bytes]] = []
    unexpected: list[object] = []
    with ros_client(ros_domain) as client:
        client.node.create_subscription(LaserScan, "/replayed/scan",
                                        lambda raw: received.append((time.monotonic(), raw)), DEPTH, raw=True)
        client.node.create_subscription(Twist, "/cmd_vel", unexpected.append, DEPTH)
        client.node.create_subscription(LaserScan, "/scan", unexpected.append, DEPTH)
        proc = _replay(ros_domain, str(MINI), "--rate", "2", "--topics", "scan", "--remap", "scan:=/replayed/scan",
                       "--start-offset", "27", "--wait-for-subscribers", "20", "--delay", "0.3")
        client.spin_until(lambda: len(received) >= len(expected) or proc.poll() is not None, 30.0, "replay ends")
        client.spin_for(0.3)
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, output
    assert [raw for _, raw in received] == [raw for _, raw in expected]
    assert not unexpected
    received_span = received[-1][0] - received[0][0]
    expected_span = expected[-1][0] - expected[0][0]
    assert received_span == pytest.approx(expected_span, rel=0.15)  # half the bag's span, not the full one


def test_replay_with_clock_publishes_bag_receive_times_and_drops_the_recorded_sim_clock(ros_domain: DomainLease):
    stamps: list[int] = []
    with ros_client(ros_domain) as client:
        client.node.create_subscription(
            Clock, "/clock", lambda m: stamps.append(m.clock.sec * 10**9 + m.clock.nanosec), DEPTH)
        proc = _replay(ros_domain, str(WALKER), "--clock", "50", "--topics", "/clock", "/cmd_vel",
                       "--start-offset", "25", "--delay", "1.5")
        client.spin_until(lambda: proc.poll() is not None, 30.0, "replay ends")
        client.spin_for(0.3)
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, output
    with open_bag(WALKER) as reader:
        window = (reader.start_ns + 25 * 10**9, reader.end_ns)
    assert len(stamps) > 50
    assert stamps == sorted(stamps)
    assert all(window[0] <= s <= window[1] for s in stamps)  # wall receive times, never the 6785 s sim clock


def test_replay_skips_a_type_that_is_not_installed_with_a_warning(ros_domain: DomainLease):
    proc = _replay(ros_domain, str(NAV2), "--start-offset", "11")
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "skipping /local_costmap/costmap: message type nav2_msgs/msg/Costmap is not installed" in output


def test_replay_of_a_missing_bag_fails_with_a_clear_error(ros_domain: DomainLease, tmp_path: Path):
    proc = _replay(ros_domain, str(tmp_path / "nope"))
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "error: bag not found" in output


def test_recorder_node_refuses_an_existing_output_directory(ros_domain: DomainLease, tmp_path: Path):
    proc = NodeProcess(RECORDER, ros_domain, params={"output": str(tmp_path)})
    try:
        assert proc.proc.wait(timeout=20) == 1
        assert "exists already; choose a new output directory" in proc.output()
    finally:
        proc.stop()
