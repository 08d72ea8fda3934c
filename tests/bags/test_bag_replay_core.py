"""The replay schedule mirrors `ros2 bag play` options; the pacer sleeps then spins to each deadline."""

from __future__ import annotations

from itertools import islice

import pytest

from safevla_node.bags.reader import open_bag
from safevla_node.bags.replay import CLOCK_TOPIC, Pacer, ReplayConfig, ReplayPlan, parse_remaps
from safevla_node.bags.typestore import make_typestore
from safevla_node.errors import BagError, ConfigError
from tests.bags.bag_fixtures import MINI, WALKER, requires_bags

pytestmark = requires_bags


def _events(bag, **cfg):
    with open_bag(bag) as reader:
        plan = ReplayPlan(reader, ReplayConfig(**cfg))
        return plan, list(islice(plan.events(), 2000))


def test_offsets_are_bag_receive_time_offsets_divided_by_rate():
    _, normal = _events(MINI)
    _, double = _events(MINI, rate=2.0)
    assert len(normal) == len(double) == 340
    assert normal[0].offset_s == 0.0
    assert normal[-1].offset_s == pytest.approx(33.83, abs=0.01)
    assert [e.offset_s / 2 for e in normal] == pytest.approx([e.offset_s for e in double])
    assert all(a.offset_s <= b.offset_s for a, b in zip(normal, normal[1:]))


def test_topics_and_remap_select_and_rename():
    plan, events = _events(MINI, topics=("scan",), remap=("/scan:=/replayed/scan",))
    assert {e.topic for e in events} == {"/replayed/scan"}
    assert len(events) == 170
    assert plan.publishers() == {"/replayed/scan": "sensor_msgs/msg/LaserScan"}


def test_start_offset_skips_the_beginning_and_restarts_offsets_at_zero():
    _, full = _events(MINI)
    _, late = _events(MINI, start_offset_s=10.0)
    skipped = [e for e in full if e.offset_s < 10.0]
    assert len(late) == len(full) - len(skipped)
    assert late[0].offset_s == pytest.approx(full[len(skipped)].offset_s - 10.0)


def test_start_offset_past_the_end_is_a_bag_error():
    with open_bag(MINI) as reader, pytest.raises(BagError, match=r"--start-offset 99.0 s is past the end"):
        ReplayPlan(reader, ReplayConfig(start_offset_s=99.0))


def test_unknown_topic_is_a_bag_error():
    with open_bag(MINI) as reader, pytest.raises(BagError, match=r"no topic '/odom'"):
        ReplayPlan(reader, ReplayConfig(topics=("/odom",)))


def test_loop_repeats_the_bag_after_its_end():
    _, events = _events(MINI, loop=True, rate=1.0)
    first, second = events[:340], events[340:680]
    assert [e.raw for e in first] == [e.raw for e in second]
    assert second[0].offset_s > first[-1].offset_s
    assert second[0].offset_s == pytest.approx(33.83, abs=0.01)


def test_clock_ticks_carry_the_bag_receive_time_at_their_wall_offset_and_replace_the_recorded_clock():
    plan, events = _events(WALKER, clock_hz=10.0, rate=2.0, topics=("/clock", "/cmd_vel"))
    ticks = [e for e in events if e.topic == CLOCK_TOPIC]
    assert "/clock" in plan.publishers() and len([e for e in events if e.msgtype == "geometry_msgs/msg/Twist"]) == 137
    assert len(ticks) == pytest.approx(27.72 / 2 * 10, abs=2)
    store = make_typestore()
    for tick in ticks[:5]:
        stamp = store.deserialize_cdr(tick.raw, "rosgraph_msgs/msg/Clock").clock
        assert stamp.sec * 10**9 + stamp.nanosec == tick.bag_time_ns
        assert tick.bag_time_ns - plan.start_ns == pytest.approx(tick.offset_s * 2.0 * 1e9, abs=1)
    assert all(t.bag_time_ns > 1_600_000_000 * 10**9 for t in ticks)  # wall receive times, not sim time


@pytest.mark.parametrize(("cfg", "match"), [
    ({"rate": 0.0}, r"rate=0.0 is out of range"),
    ({"clock_hz": -1.0}, r"clock_hz=-1.0 is out of range"),
    ({"start_offset_s": -1.0}, r"start_offset_s=-1.0 is out of range"),
    ({"remap": ("/a=/b",)}, r"remap '/a=/b' is not of the form from:=to"),
])
def test_replay_config_rejects_bad_values(cfg, match):
    with pytest.raises(ConfigError, match=match):
        ReplayConfig(**cfg)


def test_parse_remaps_makes_both_sides_absolute():
    assert parse_remaps(["scan:=front/scan"]) == {"/scan": "/front/scan"}


class FakeClock:
    """A clock that only moves when the pacer sleeps or reads it (each read costs 10 us)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def read(self) -> float:
        self.now += 1e-5
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_sleeps_until_the_spin_margin_then_spins_to_the_deadline():
    clock = FakeClock()
    pacer = Pacer(spin_s=1e-3, poll_s=10.0, clock=clock.read, sleep=clock.sleep)
    pacer.start()
    lateness = pacer.wait_until(0.5)
    assert clock.sleeps == [pytest.approx(0.499, abs=1e-4)]
    assert lateness is not None and 0.0 <= lateness < 2e-5


def test_pacer_returns_at_once_for_a_past_deadline():
    clock = FakeClock()
    pacer = Pacer(clock=clock.read, sleep=clock.sleep)
    pacer.start()
    clock.now += 1.0
    assert pacer.wait_until(0.2) == pytest.approx(0.8, abs=1e-3)
    assert clock.sleeps == []


def test_pacer_polls_cancellation_during_a_long_gap():
    clock = FakeClock()
    pacer = Pacer(poll_s=0.05, clock=clock.read, sleep=clock.sleep)
    pacer.start()
    assert pacer.wait_until(60.0, cancelled=lambda: len(clock.sleeps) >= 3) is None
    assert clock.sleeps == [0.05, 0.05, 0.05]


def test_pacer_rejects_a_negative_spin_margin():
    with pytest.raises(ConfigError, match=r"spin_s=-1.0 must be >= 0"):
        Pacer(spin_s=-1.0)
