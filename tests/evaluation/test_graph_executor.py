"""What the through-ROS executor refuses before it starts a graph, and the monitor it starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from safevla_node.evaluation.planning_margins import PlanningMargins
from safevla_node.evaluation.shielding import EVALUATION_MEMORY
from safevla_node.evaluation.suite import expand, load_suite
from safevla_node.nodes.graph_executor import MONITOR_OVERRIDES, RosGraphExecutor, bridge_episode_parameters
from safevla_node.nodes.params import config_from_parameters
from safevla_node.safety.monitor import MonitorConfig
from sim_bridge.bridge import BridgeConfig

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


def test_the_through_ros_monitor_remembers_as_in_process_evaluation_does() -> None:
    """Same obstacle memory (no decay: see EVALUATION_MEMORY) and discrete execution."""
    monitor = config_from_parameters(MonitorConfig, MONITOR_OVERRIDES)
    assert monitor.obstacle_memory == EVALUATION_MEMORY
    assert monitor.action_execution == "discrete"


def test_the_bridge_hosted_expert_plans_around_the_episodes_margins_as_in_process() -> None:
    """The margins reach the bridge's proposer as parameters it declares (a misspelt one would be refused)."""
    spec = next(s for s in expand(load_suite(SUITE)) if s.policy.kind == "expert")
    spec = replace(spec, shield_config=replace(spec.shield_config, danger_margin_m=0.12, fragile_margin_m=0.08))
    bridge = config_from_parameters(BridgeConfig, {"action_execution": "discrete", **bridge_episode_parameters(spec)})
    assert bridge.proposer.kind == "expert"
    assert bridge.proposer.margins == spec.planning_margins == PlanningMargins(fragile_margin_m=0.08,
                                                                               danger_margin_m=0.12)
