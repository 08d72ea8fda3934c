"""The recorder core writes readable split bags, keeps them readable between splits, and rejects misuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from safevla_node.bags.reader import PARTIAL_SPLIT_PREFIX, open_bag
from safevla_node.bags.typestore import make_typestore, register_installed_type
from safevla_node.bags.writer import BagRecorder, RecordConfig
from safevla_node.errors import BagError, ConfigError

TS = make_typestore()
TWIST = "geometry_msgs/msg/Twist"
INFINITE = QosTime(9223372036, 854775807)
BEST_EFFORT = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE, INFINITE, INFINITE,
                  QosLiveliness.AUTOMATIC, INFINITE, False)


def _twist(x: float) -> bytes:
    vec = TS.types["geometry_msgs/msg/Vector3"]
    return bytes(TS.serialize_cdr(TS.types[TWIST](vec(x, 0.0, 0.0), vec(0.0, 0.0, 0.0)), TWIST))


def _record(path: Path, n: int, **cfg: object) -> BagRecorder:
    with BagRecorder(RecordConfig(output=str(path), **cfg)) as rec:  # type: ignore[arg-type]
        rec.add_topic("cmd_vel", TWIST, [BEST_EFFORT])
        for i in range(n):
            rec.write("/cmd_vel", 1_700_000_000_000_000_000 + i * 100_000_000, _twist(float(i)))
    return rec


@pytest.mark.parametrize(("storage", "compression"),
                         [("mcap", "none"), ("mcap", "storage"), ("mcap", "file"), ("sqlite3", "none"),
                          ("sqlite3", "message")])
def test_recorded_messages_read_back_in_order_with_their_qos_and_definition(tmp_path: Path, storage: str,
                                                                         compression: str):
    _record(tmp_path / "bag", 25, storage=storage, compression=compression, max_split_duration_s=1.0)
    with open_bag(tmp_path / "bag") as reader:
        (topic,) = reader.topics
        assert (topic.name, topic.msgtype, topic.count, topic.qos) == ("/cmd_vel", TWIST, 25, (BEST_EFFORT,))
        assert [reader.decode(m).linear.x for m in reader.messages()] == [float(i) for i in range(25)]
        assert reader.storage == storage and not reader.warnings


def test_recording_is_split_by_duration_and_every_split_is_listed(tmp_path: Path):
    rec = _record(tmp_path / "bag", 25, max_split_duration_s=1.0)
    assert [p.name for p in rec.splits] == [f"bag_{i}.mcap" for i in range(3)]
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag_0.mcap", "bag_1.mcap", "bag_2.mcap",
                                                                   "metadata.yaml"]


def test_recording_is_split_by_size(tmp_path: Path):
    rec = _record(tmp_path / "bag", 20, max_split_bytes=10 * len(_twist(0.0)), max_split_duration_s=0.0)
    assert len(rec.splits) == 2


def test_bag_is_readable_up_to_the_last_closed_split_while_a_split_is_still_open(tmp_path: Path):
    """What a SIGKILL leaves behind: closed splits readable, the open one reported as unfinalised."""
    rec = BagRecorder(RecordConfig(output=str(tmp_path / "bag"), max_split_duration_s=1.0))
    rec.open()
    rec.add_topic("/cmd_vel", TWIST)
    for i in range(15):  # 10 messages in split 0, 5 in the open split 1
        rec.write("/cmd_vel", i * 100_000_000, _twist(float(i)))
    copy = tmp_path / "killed"
    shutil.copytree(tmp_path / "bag", copy)  # the on-disk state at this instant
    rec.close()
    with open_bag(copy) as reader:
        assert [reader.decode(m).linear.x for m in reader.messages()] == [float(i) for i in range(10)]
        assert any(f"{PARTIAL_SPLIT_PREFIX}1" in w for w in reader.warnings)


def test_empty_recording_is_a_valid_empty_bag_with_its_topics(tmp_path: Path):
    with BagRecorder(RecordConfig(output=str(tmp_path / "bag"))) as rec:
        rec.add_topic("/scan", "sensor_msgs/msg/LaserScan")
    with open_bag(tmp_path / "bag") as reader:
        assert [(t.name, t.count) for t in reader.topics] == [("/scan", 0)]


def test_existing_output_directory_is_refused(tmp_path: Path):
    with pytest.raises(BagError, match=r"exists already; choose a new output directory"):
        BagRecorder(RecordConfig(output=str(tmp_path))).open()


def test_writing_an_undeclared_topic_is_a_bag_error(tmp_path: Path):
    with BagRecorder(RecordConfig(output=str(tmp_path / "bag"))) as rec, \
            pytest.raises(BagError, match=r"/odom was not declared; call add_topic"):
        rec.write("/odom", 0, b"")


def test_writing_after_close_is_a_bag_error(tmp_path: Path):
    rec = _record(tmp_path / "bag", 1)
    with pytest.raises(BagError, match=r"not open for writing"):
        rec.write("/cmd_vel", 0, _twist(0.0))


def test_topic_redeclared_with_another_type_is_a_bag_error(tmp_path: Path):
    with BagRecorder(RecordConfig(output=str(tmp_path / "bag"))) as rec:
        rec.add_topic("/x", TWIST)
        with pytest.raises(BagError, match=r"/x is recorded as geometry_msgs/msg/Twist, now offered as"):
            rec.add_topic("/x", "std_msgs/msg/String")


def test_type_without_any_definition_is_not_recorded(tmp_path: Path):
    with BagRecorder(RecordConfig(output=str(tmp_path / "bag"))) as rec:
        assert not rec.add_topic("/perf", "gazebo_msgs/msg/PerformanceMetrics")
        assert "/perf" not in rec.topics


def test_installed_msg_files_register_a_type_and_its_dependencies(tmp_path: Path):
    share = tmp_path / "share"
    (share / "demo_msgs/msg").mkdir(parents=True)
    (share / "demo_msgs/msg/Pair.msg").write_text("demo_msgs/Item first\ndemo_msgs/Item[] rest\n")
    (share / "demo_msgs/msg/Item.msg").write_text("string name\ngeometry_msgs/Point where\n")
    store = make_typestore()
    assert register_installed_type(store, "demo_msgs/msg/Pair", [tmp_path])
    assert {"demo_msgs/msg/Pair", "demo_msgs/msg/Item"} <= set(store.fielddefs)
    assert store.generate_msgdef("demo_msgs/msg/Pair", ros_version=2)[0]


@pytest.mark.parametrize(("cfg", "match"), [
    ({"output": ""}, r"output is empty"),
    ({"output": "x", "storage": "rosbag1"}, r"storage='rosbag1' is not one of"),
    ({"output": "x", "compression": "lz4"}, r"compression='lz4' is not one of"),
    ({"output": "x", "storage": "sqlite3", "compression": "storage"}, r"with sqlite3 use 'message' or 'file'"),
    ({"output": "x", "max_split_bytes": -1}, r"max_split_bytes=-1 is out of range"),
    ({"output": "x", "max_split_duration_s": -2.0}, r"max_split_duration_s=-2.0 is out of range"),
])
def test_record_config_rejects_bad_values(cfg: dict[str, object], match: str):
    with pytest.raises(ConfigError, match=match):
        RecordConfig(**cfg)  # type: ignore[arg-type]
