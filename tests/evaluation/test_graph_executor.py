"""What the through-ROS executor refuses before it starts a graph."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from safevla_node.evaluation.suite import expand, load_suite
from safevla_node.nodes.graph_executor import RosGraphExecutor

SUITE = Path(__file__).resolve().parents[2] / "config" / "eval_suite_parity.yaml"


def test_a_sampled_checkpoint_episode_is_recorded_as_an_error_naming_why_it_runs_in_process_only(
        tmp_path: Path) -> None:
    spec = next(s for s in expand(load_suite(SUITE)) if s.policy.kind == "checkpoint")
    spec = replace(spec, policy=replace(spec.policy, decoding="sample"))
    executor = RosGraphExecutor(log_dir=tmp_path)
    try:
        record = executor.run(spec)
    finally:
        executor.close()
    assert record.error is not None and record.error.startswith("ConfigError: policy 'bc_tiny': decoding='sample' "
                                                                "runs in-process only")
    assert not list(tmp_path.iterdir()), "no node was started"
