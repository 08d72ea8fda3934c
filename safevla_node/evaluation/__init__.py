"""Evaluation harness (SafeVLA's "Assure"): suites, policy adapters, a resumable runner, metrics and reports.

Plain Python: no rclpy; torch only when a checkpoint policy is loaded (``policies.runtime``, imported lazily).
"""

from safevla_node.evaluation.metrics import (
    CATASTROPHIC_CC,
    Aggregate,
    EpisodeRecord,
    Interval,
    ShieldEffect,
    aggregate,
    bootstrap_mean,
    catastrophic_share,
    point_biserial,
    shield_effect,
    success_weighted_path_length,
    wilson_interval,
)
from safevla_node.evaluation.report import ReportFiles, summarize, write_report
from safevla_node.evaluation.runner import (
    EpisodeExecutor,
    InProcessExecutor,
    RunResult,
    load_records,
    run_suite,
)
from safevla_node.evaluation.shielding import ShieldDecision, ShieldWorld, shielded_action
from safevla_node.evaluation.suite import EpisodeSpec, PolicySpec, SuiteConfig, expand, load_suite

__all__ = [
    "CATASTROPHIC_CC",
    "Aggregate",
    "EpisodeExecutor",
    "EpisodeRecord",
    "EpisodeSpec",
    "InProcessExecutor",
    "Interval",
    "PolicySpec",
    "ReportFiles",
    "RunResult",
    "ShieldDecision",
    "ShieldEffect",
    "ShieldWorld",
    "SuiteConfig",
    "aggregate",
    "bootstrap_mean",
    "catastrophic_share",
    "expand",
    "load_records",
    "load_suite",
    "point_biserial",
    "run_suite",
    "shield_effect",
    "shielded_action",
    "success_weighted_path_length",
    "summarize",
    "wilson_interval",
    "write_report",
]
