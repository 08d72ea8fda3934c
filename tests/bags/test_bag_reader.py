"""The reader opens every real bag as SOURCES.md describes it and rejects damaged ones with a clear BagError."""

from __future__ import annotations

from pathlib import Path

import pytest

from safevla_node.bags.reader import PARTIAL_SPLIT_PREFIX, normalize_topic, open_bag
from safevla_node.errors import BagError
from tests.bags.bag_fixtures import (ALL_BAGS, EXPECTED, MINI, NAV2, ROOMBA, WALKER, fingerprint, requires_bags,
                                     writable_copy)

pytestmark = requires_bags


@pytest.mark.parametrize("bag", ALL_BAGS, ids=lambda p: p.name)
def test_every_real_bag_opens_with_the_topics_and_counts_of_sources_md(bag: Path):
    storage, total, duration, counts = EXPECTED[bag.name]
    with open_bag(bag) as reader:
        assert reader.storage == storage
        assert reader.message_count == total
        assert reader.duration_s == pytest.approx(duration, abs=0.01)
        assert {t.name: t.count for t in reader.topics} == counts
        assert sum(1 for _ in reader.messages()) == total


@pytest.mark.parametrize("bag", ALL_BAGS, ids=lambda p: p.name)
def test_reading_and_decoding_a_real_bag_leaves_its_files_untouched(bag: Path):
    before = fingerprint(bag)
    with open_bag(bag) as reader:
        for message in reader.messages():
            if reader.topic(message.topic).decodable:
                reader.decode(message)
    assert fingerprint(bag) == before


def test_relative_topic_names_are_normalised_and_empty_qos_is_kept_empty():
    with open_bag(MINI) as reader:
        scan = reader.topic("scan")
        assert (scan.name, scan.recorded_name, scan.qos) == ("/scan", "scan", ())
        assert {m.topic for m in reader.messages(["scan"])} == {"/scan"}


def test_zstd_compressed_mcap_bag_decodes_its_costmaps_with_the_lethal_cell():
    with open_bag(NAV2) as reader:
        costmaps = [reader.decode(m) for m in reader.messages(["/local_costmap/costmap"])]
    lethal = [c for c in costmaps if 254 in c.data]
    assert len(costmaps) == 231 and lethal
    assert {c.metadata.size_x for c in costmaps} == {100}


def test_unknown_message_type_is_listed_not_fatal_and_decoding_it_names_the_fix():
    with open_bag(ROOMBA) as reader:
        perf = reader.topic("/performance_metrics")
        assert not perf.decodable
        assert any("gazebo_msgs/msg/PerformanceMetrics" in w for w in reader.warnings)
        message = next(reader.messages(["/performance_metrics"]))
        with pytest.raises(BagError, match=r"PerformanceMetrics is unknown.*EXTRA_MSG_DEFINITIONS"):
            reader.decode(message)


def test_missing_topic_is_a_bag_error_listing_the_topics_there_are():
    with open_bag(WALKER) as reader, pytest.raises(BagError, match=r"no topic '/camera/image_raw'.*'/scan'"):
        reader.topic("/camera/image_raw")


def test_missing_bag_path_is_a_bag_error(tmp_path: Path):
    with pytest.raises(BagError, match=r"bag not found: .*nope.*rosbag2 directory"):
        open_bag(tmp_path / "nope")


def test_directory_without_metadata_is_a_bag_error(tmp_path: Path):
    with pytest.raises(BagError, match=r"has no metadata.yaml; it is not a rosbag2 directory"):
        open_bag(tmp_path)


def test_directory_with_only_a_killed_first_split_says_nothing_is_recoverable(tmp_path: Path):
    (tmp_path / f"{PARTIAL_SPLIT_PREFIX}0").mkdir()
    with pytest.raises(BagError, match=r"only unfinalised splits .*killed"):
        open_bag(tmp_path)


def test_storage_file_path_is_accepted_in_place_of_its_bag_directory():
    with open_bag(MINI / "my_bag_0.db3") as reader:
        assert reader.path == MINI


def test_truncated_sqlite3_bag_is_a_bag_error_naming_its_file(tmp_path: Path):
    bag = writable_copy(MINI, tmp_path)
    db = bag / "my_bag_0.db3"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    with pytest.raises(BagError, match=r"my_bag_0.db3.*corrupt or truncated"), open_bag(bag):
        pass


def test_truncated_zstd_mcap_bag_is_a_bag_error(tmp_path: Path):
    bag = writable_copy(NAV2, tmp_path)
    blob = bag / "_tmp_cm_bag_0.mcap.zstd"
    blob.write_bytes(blob.read_bytes()[:10_000])
    with pytest.raises(BagError, match=r"_tmp_cm_bag_0.mcap.zstd.*corrupt or truncated"), open_bag(bag):
        pass


def test_corrupt_metadata_is_a_bag_error(tmp_path: Path):
    bag = writable_copy(MINI, tmp_path)
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n")
    with pytest.raises(BagError, match=r"cannot open bag .*YAML"), open_bag(bag):
        pass


def test_storage_file_listed_but_missing_is_a_bag_error(tmp_path: Path):
    bag = writable_copy(MINI, tmp_path)
    (bag / "my_bag_0.db3").unlink()
    with pytest.raises(BagError, match=r"missing"), open_bag(bag):
        pass


def test_reader_used_outside_its_with_block_is_a_bag_error():
    reader = open_bag(MINI)
    with pytest.raises(BagError, match=r"not open; use `with open_bag"):
        _ = reader.topics


@pytest.mark.parametrize(("name", "expected"), [("scan", "/scan"), ("/scan", "/scan"), ("a/b", "/a/b")])
def test_normalize_topic_makes_names_absolute(name: str, expected: str):
    assert normalize_topic(name) == expected
