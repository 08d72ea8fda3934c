"""A through-ROS episode in which the policy node does not propose every result it computes is not recorded
as if it had stepped like in-process evaluation: the executor runs it again, then records an error that
names the node's counters (``graph_executor.PolicyNodeSlipped``).

The slip is provoked, not waited for: a primitive timeout shorter than any primitive makes the policy node
propose again before the monitor has reported on its proposal (``primitive_timeouts``), as an overloaded
machine would for the relaxed timeout of an evaluation graph.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from safevla_node.evaluation.suite import expand, load_suite
from safevla_node.nodes import graph_executor

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SUITE = Path(__file__).resolve().parents[2] / "config" / "eval_suite_parity.yaml"


def test_a_slipped_episode_is_run_again_then_recorded_as_an_error_naming_the_counters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(graph_executor, "SLIP_ATTEMPTS", 2)
    monkeypatch.setitem(graph_executor.POLICY_NODE_OVERRIDES, "primitive_timeout_s", 0.01)
    spec = next(s for s in expand(load_suite(SUITE)) if s.policy.name == "bc_tiny" and not s.shield)
    spec = replace(spec, step_budget=4)
    executor = graph_executor.RosGraphExecutor(episode_timeout_s=60.0, log_dir=tmp_path / "logs")
    try:
        with caplog.at_level(logging.WARNING, logger=graph_executor.__name__):
            record = executor.run(spec)
    finally:
        executor.close()
    assert record.error is not None and "PolicyNodeSlipped" in record.error, record
    assert "primitive_timeouts" in record.error and "did not propose every result" in record.error
    assert any("running it again (attempt 2 of 2)" in r.getMessage() for r in caplog.records)
