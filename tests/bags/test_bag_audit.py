"""The audit runs the monitor core over each real bag and reports what it would have done, and what it could not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from safevla_node.bags.adapters import costmap_to_scan
from safevla_node.msg_decode import odom_from_msg, scan_from_msg, twist_from_msg
from safevla_node.bags.audit import AuditConfig, load_monitor_config, run_audit
from safevla_node.bags.audit_report import AuditReport
from safevla_node.bags.typestore import make_typestore
from safevla_node.bags.writer import BagRecorder, RecordConfig
from safevla_node.cli import main as cli_main
from safevla_node.errors import BagError, ConfigError, MessageError
from safevla_node.safety.types import Category, DiscreteCommand, VerdictKind
from tests.bags.bag_fixtures import ALL_BAGS, MINI, NAV2, REPO_ROOT_CONFIG, ROOMBA, WALKER, fingerprint, requires_bags

TS = make_typestore()
T = TS.types


@pytest.fixture(scope="module")
def audited() -> tuple[dict[str, AuditReport], dict[str, tuple[dict, dict]]]:
    """Each real bag audited once, with the fingerprints of its files before and after."""
    if not NAV2.is_dir():
        pytest.skip("real bags not available")
    reports, prints = {}, {}
    for bag in ALL_BAGS:
        before = fingerprint(bag)
        reports[bag.name] = run_audit(bag)
        prints[bag.name] = (before, fingerprint(bag))
    return reports, prints


@pytest.fixture(scope="module")
def reports(audited) -> dict[str, AuditReport]:
    return audited[0]


def _intervals_per_tick(report: AuditReport) -> list:
    per_tick: list = [None] * len(report.times)
    for interval in report.intervals:
        for k in np.flatnonzero((report.times >= interval.start_s) & (report.times <= interval.end_s)):
            per_tick[k] = interval
    return per_tick


@requires_bags
def test_nav2_lethal_cell_under_the_robot_stops_it_exactly_while_the_cell_is_there(reports):
    """SOURCES.md: the lethal cell is there for costmap stamps 3.00-7.95 s, i.e. bag time 2.20-7.15 s."""
    report = reports[NAV2.name]
    assert report.inputs["costmap"] == "/local_costmap/costmap"
    collision = report.times[[i is not None and i.category is Category.COLLISION for i in _intervals_per_tick(report)]]
    assert collision.min() == pytest.approx(2.20, abs=0.1) and collision.max() == pytest.approx(7.15, abs=0.1)
    window = (report.times >= 2.3) & (report.times <= 7.1)
    assert np.all(report.kinds[window] == int(VerdictKind.STOP))
    outside = (report.times > 0.1) & ((report.times < 2.1) | (report.times > 7.3))
    assert np.all(report.kinds[outside] == int(VerdictKind.ALLOW))
    assert report.risk_summary()["collision"]["max"] == 1.0
    assert report.interventions()[0].commanded_ticks == report.interventions()[0].ticks  # 0.2 m/s all along


@requires_bags
def test_roomba_bag_with_an_empty_scan_topic_reports_scan_missing_and_stops_throughout(reports):
    report = reports[ROOMBA.name]
    assert "scan missing: /scan is declared but has no messages" in report.lacks
    assert "scan" in report.required_sources
    assert report.verdict_counts()["ALLOW"] == 0
    assert {i.reason for i in report.intervals} == {"required source scan never received"}
    assert report.interventions()[0].commanded_ticks > 0


@requires_bags
def test_walker_bag_is_judged_geometrically_on_scan_odom_and_cmd_vel(reports):
    report = reports[WALKER.name]
    assert {"scan", "odom", "joint_states", "command", "clock"} <= report.inputs.keys()
    assert report.required_sources == ["scan", "odom", "joint_states"]
    assert {i.category for i in report.interventions()} & {Category.COLLISION, Category.BLIND_SPOT}
    scan = next(s for s in report.sources if s.role == "scan")
    assert (scan.count, scan.frames) == (138, ["base_scan"])
    assert report.sim_clock_s is not None and 6785 < report.sim_clock_s[0] < 6813
    assert "sim time" in report.to_json()["clock"]["header_stamps"]
    assert any("PerformanceMetrics" in w for w in report.warnings)


@requires_bags
def test_mini_roomba_bag_with_relative_names_and_no_odometry_is_audited_on_scan_and_cmd_vel(reports):
    report = reports[MINI.name]
    assert report.inputs == {"command": "/cmd_vel", "scan": "/scan"}
    assert any(entry.startswith("odom missing") for entry in report.lacks)
    assert report.required_sources == ["scan"]
    assert any("no odometry" in note for note in report.notes)
    assert report.verdict_counts()["ALLOW"] > 0 and report.interventions()


@requires_bags
@pytest.mark.parametrize("bag", ALL_BAGS, ids=lambda p: p.name)
def test_every_real_bag_report_says_it_has_no_cameras_and_renders(reports, bag: Path, tmp_path: Path):
    report = reports[bag.name]
    assert any(entry.startswith("cameras missing") for entry in report.lacks)
    paths = report.write(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["verdict_counts"] == report.verdict_counts()
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Verdicts that would have stopped or limited the robot" in paths["markdown"].read_text()


@requires_bags
def test_audit_is_deterministic(reports):
    again = run_audit(NAV2).to_json()
    first = reports[NAV2.name].to_json()
    again.pop("performance"), first.pop("performance")
    assert again == first


@requires_bags
@pytest.mark.parametrize("bag", ALL_BAGS, ids=lambda p: p.name)
def test_audit_never_modifies_its_input(audited, bag: Path):
    before, after = audited[1][bag.name]
    assert after == before


@requires_bags
def test_command_topic_not_in_the_bag_is_reported_missing_and_nothing_is_commanded():
    report = run_audit(MINI, AuditConfig(command_topics=("/cmd_vel_in",)))
    assert "command missing: none of ['/cmd_vel_in'] in the bag" in report.lacks
    assert not report.interventions()


@requires_bags
def test_monitor_config_file_is_applied(tmp_path: Path):
    config = tmp_path / "monitor.yaml"
    config.write_text("safety_monitor:\n  ros__parameters:\n    control_rate_hz: 10.0\n")
    report = run_audit(NAV2, monitor_config=load_monitor_config(config))
    assert report.control_rate_hz == 10.0
    assert len(report.times) == pytest.approx(11.5 * 10, abs=2)


def test_monitor_config_with_a_bad_value_is_a_config_error(tmp_path: Path):
    config = tmp_path / "monitor.yaml"
    config.write_text("safety_monitor:\n  ros__parameters:\n    control_rate_hz: -1.0\n")
    with pytest.raises(ConfigError, match=r"control_rate_hz=-1.0 is out of range"):
        load_monitor_config(config)


def test_missing_bag_is_a_bag_error(tmp_path: Path):
    with pytest.raises(BagError, match=r"bag not found: .*missing_bag"):
        run_audit(tmp_path / "missing_bag")


def _scan(stamp_ns: int, ranges: np.ndarray) -> bytes:
    header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](stamp_ns // 10**9, stamp_ns % 10**9), "laser")
    msg = T["sensor_msgs/msg/LaserScan"](header, -np.pi, np.pi, 2 * np.pi / (len(ranges) - 1), 0.0, 0.1, 0.05, 10.0,
                                         ranges.astype(np.float32), np.zeros(0, np.float32))
    return bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/LaserScan"))


def test_corrupt_chunk_mid_bag_ends_the_audit_early_but_reports_what_was_read(tmp_path: Path):
    rng = np.random.default_rng(0)
    with BagRecorder(RecordConfig(output=str(tmp_path / "bag"), compression="storage", max_split_duration_s=0)) as rec:
        rec.add_topic("/scan", "sensor_msgs/msg/LaserScan")
        for i in range(600):  # about 2.4 MB: three 1 MiB chunks
            rec.write("/scan", i * 50_000_000, _scan(i * 50_000_000, rng.uniform(1.0, 3.0, 1000)))
    storage = tmp_path / "bag" / "bag_0.mcap"
    data = bytearray(storage.read_bytes())
    middle = int(len(data) * 0.6)  # inside the second chunk
    data[middle:middle + 64] = bytes(64)
    storage.write_bytes(bytes(data))
    report = run_audit(tmp_path / "bag")
    assert len(report.errors) == 1 and "corrupt or truncated after" in report.errors[0]
    scan = next(s for s in report.sources if s.role == "scan")
    assert 0 < scan.count < 600
    assert report.times[-1] == pytest.approx(29.95, abs=0.06)  # the timeline still covers the whole bag
    assert report.kinds[-1] == int(VerdictKind.STOP)  # the scan went stale where reading stopped


def test_undecodable_message_is_dropped_as_malformed_and_holds_a_stop(tmp_path: Path):
    with BagRecorder(RecordConfig(output=str(tmp_path / "bag"))) as rec:
        rec.add_topic("/scan", "sensor_msgs/msg/LaserScan")
        for i in range(40):
            raw = b"\x00\x01\x00\x00garbage" if i == 20 else _scan(i * 100_000_000, np.full(361, 5.0))
            rec.write("/scan", i * 100_000_000, raw)
    report = run_audit(tmp_path / "bag")
    scan = next(s for s in report.sources if s.role == "scan")
    assert len(scan.malformed) == 1 and scan.malformed[0].startswith("2.000 s")
    held = (report.times > 2.0) & (report.times < 3.0)  # the tick at 2.0 s runs before the message
    assert np.all(report.kinds[held] == int(VerdictKind.STOP))
    assert any(i.reason.startswith("malformed scan dropped") for i in report.intervals)


class ForwardPolicy:
    """Always proposes the first action: exercises the policy hook without a model."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def propose(self, now: float, latest: dict) -> DiscreteCommand:
        self.calls.append(now)
        assert "/scan" in latest or now < 0.25
        return DiscreteCommand(0)


@requires_bags
def test_policy_hook_is_called_at_its_rate_and_its_proposals_reach_the_monitor(reports):
    policy = ForwardPolicy()
    report = run_audit(MINI, AuditConfig(policy_rate_hz=2.0), policy=policy)
    assert len(policy.calls) == pytest.approx(33.83 * 2, abs=2)
    assert report.verdict_counts() != reports[MINI.name].verdict_counts()


@requires_bags
def test_cli_audit_writes_the_three_files_and_rejects_a_checkpoint(tmp_path: Path, capsys):
    assert cli_main(["audit", str(NAV2), "-o", str(tmp_path), "--monitor-config", str(REPO_ROOT_CONFIG)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json", "audit.md", "timeline.png"]
    assert cli_main(["audit", str(NAV2), "--checkpoint", "model.safetensors"]) == 2
    assert "policy runtime is not part of this build" in capsys.readouterr().err


# --- adapters --------------------------------------------------------------------------------------------


def _costmap(lethal: list[int]) -> object:
    meta = T["nav2_msgs/msg/CostmapMetaData"](
        T["builtin_interfaces/msg/Time"](0, 0), T["builtin_interfaces/msg/Time"](0, 0), "", 0.05, 100, 100,
        T["geometry_msgs/msg/Pose"](T["geometry_msgs/msg/Point"](-2.5, -2.5, 0.0),
                                    T["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0)))
    data = np.zeros(100 * 100, dtype=np.uint8)
    data[lethal] = 254
    header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](0, 0), "base_footprint")
    return T["nav2_msgs/msg/Costmap"](header, meta, data)


def test_costmap_lethal_cells_become_the_nearest_return_of_their_beam():
    scan = costmap_to_scan(_costmap([50 * 100 + 50, 50 * 100 + 90, 50 * 100 + 70]))  # (0.025, 0.025), x=2.025, x=1.025
    finite = np.flatnonzero(np.isfinite(scan.ranges))
    angles = scan.angle_min + scan.angle_increment * finite
    hits = {round(float(a), 2): round(float(r), 3) for a, r in zip(angles, scan.ranges[finite])}
    assert hits[round(np.arctan2(0.025, 0.025), 2)] == pytest.approx(0.035, abs=1e-3)
    assert min(r for a, r in hits.items() if abs(a) < 0.05) == pytest.approx(1.025, abs=1e-3)  # nearer cell wins
    assert scan.range_min == 0.0 and scan.range_max > 3.5


def test_costmap_with_a_wrong_data_size_is_malformed():
    msg = _costmap([])
    msg.data = np.zeros(10, dtype=np.uint8)
    with pytest.raises(MessageError, match=r"costmap has 10 cells, its metadata says 100 x 100"):
        costmap_to_scan(msg)


def test_scan_whose_range_count_contradicts_its_angles_is_malformed():
    msg = TS.deserialize_cdr(_scan(0, np.full(361, 1.0)), "sensor_msgs/msg/LaserScan")
    msg.ranges = msg.ranges[:10]
    with pytest.raises(MessageError, match=r"scan has 10 ranges but its angles imply 361"):
        scan_from_msg(msg)


def test_non_finite_twist_is_malformed():
    vec = T["geometry_msgs/msg/Vector3"]
    with pytest.raises(MessageError, match=r"twist is not finite"):
        twist_from_msg(T["geometry_msgs/msg/Twist"](vec(float("nan"), 0, 0), vec(0, 0, 0)), 0.5)


def test_odometry_with_a_non_unit_quaternion_is_malformed():
    g = T
    pose = g["geometry_msgs/msg/PoseWithCovariance"](
        g["geometry_msgs/msg/Pose"](g["geometry_msgs/msg/Point"](0, 0, 0),
                                    g["geometry_msgs/msg/Quaternion"](0, 0, 0, 2)),
        np.zeros(36))
    twist = g["geometry_msgs/msg/TwistWithCovariance"](
        g["geometry_msgs/msg/Twist"](g["geometry_msgs/msg/Vector3"](0, 0, 0), g["geometry_msgs/msg/Vector3"](0, 0, 0)),
        np.zeros(36))
    header = g["std_msgs/msg/Header"](g["builtin_interfaces/msg/Time"](0, 0), "odom")
    with pytest.raises(MessageError, match=r"not a unit quaternion"):
        odom_from_msg(g["nav_msgs/msg/Odometry"](header, "base_link", pose, twist))
