"""In-process and through-ROS evaluation give the same numbers on the same seeds.

``config/eval_suite_parity.yaml`` (easy homes, 2 seeds, ObjectNav and PickUp, a 30-step budget, the expert
and the shipped checkpoint, shield off and on: 16 episodes, several with shield replacements) runs through
``safevla eval`` twice: in-process, and with ``--through-ros`` (the sim bridge, the safety monitor and, for
the checkpoint, the real policy node as processes over loopback DDS, the monitor judging every proposal from
what it receives over ROS; the expert runs inside the bridge). Every episode must agree exactly.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from safevla_node.cli.eval_command import main as eval_main
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.runner import load_records

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SUITE = Path(__file__).resolve().parents[2] / "config" / "eval_suite_parity.yaml"
#: Not compared: wall time differs by nature (a graph of processes vs one loop), and nothing else may.
NOT_COMPARED = {"wall_time_s"}


def test_in_process_and_through_ros_runs_give_identical_records(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torch in this process, like the node processes
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the executor puts its node logs
    # (the through-ROS executor leases its own loopback-only DDS domain)
    assert eval_main([str(SUITE), "--out", str(tmp_path / "in_process")]) == 0
    assert eval_main([str(SUITE), "--out", str(tmp_path / "ros"), "--through-ros"]) == 0
    assert not list(scratch.iterdir()), "a run without failures leaves no node logs behind"
    in_process, through_ros = load_records(tmp_path / "in_process"), load_records(tmp_path / "ros")
    assert len(in_process) == 16 and sorted(in_process) == sorted(through_ros)
    compared = [f.name for f in fields(EpisodeRecord) if f.name not in NOT_COMPARED]
    mismatches = {
        key: {name: (getattr(a, name), getattr(through_ros[key], name)) for name in compared
              if getattr(a, name) != getattr(through_ros[key], name)}
        for key, a in in_process.items()
    }
    assert {k: v for k, v in mismatches.items() if v} == {}
    # The suite exercises the shield in the loop, not only its absence.
    assert sum(r.interventions for r in in_process.values() if r.shield) > 0
    assert all(r.error is None for r in through_ros.values())
