"""``safevla demo``, the README's first command, end to end: the ``sim`` profile's three node processes over
loopback DDS, one short episode, the report, the episode trace and the recorded bag."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from safevla_node.bags.reader import open_bag

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_drives_an_episode_through_the_stack_and_writes_the_report_trace_and_bag(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "safevla_node.cli", "demo", "--out", str(out), "--tasks", "pickup",
         "--shield", "on", "--max-steps", "3"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "[demo] 1/1 shield on  pickup    seed 1" in done.stdout
    assert "| policy + shield | – | 0.000 / " in done.stdout  # the main SR / CC table, PickUp column
    assert "| policy + shield | 1 | 0 |" in (out / "report.md").read_text()  # one episode, no error
    assert (out / "trace_pickup_seed1_shield_on.png").stat().st_size > 10_000
    with open_bag(out / "episode_bag") as bag:
        counts = {t.name: t.count for t in bag.topics}
    for topic in ("/clock", "/cmd_vel", "/safevla/action_proposal", "/safevla/safety_state",
                  "/safevla/primitive_status", "/safevla/episode_status"):
        assert counts.get(topic, 0) > 0, f"{topic} not recorded: {counts}"
