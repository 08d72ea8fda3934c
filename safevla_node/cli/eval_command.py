"""``safevla eval``: run a benchmark suite (resumable) and write its report.

Registered in the ``safevla`` command (``safevla_node.cli``); ``python -m safevla_node.evaluation`` runs it
on its own.

Exit status: 0 every episode finished, 1 some episodes crashed (recorded in the report), 2 a usage or
configuration error, 130 interrupted by Ctrl-C or SIGTERM (the workers are stopped; rerun the same command
to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from safevla_node.cli import add_subcommand
from safevla_node.errors import SafeVLAError

__all__ = ["HELP", "configure", "main", "run"]

HELP = "run an evaluation suite (SR, CC, SEL, shield interventions) and write its report"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``safevla eval`` to ``parser``."""
    parser.add_argument("suite", type=Path, help="suite YAML (e.g. config/eval_suite.yaml)")
    parser.add_argument("--out", type=Path, required=True,
                        help="results folder: episodes.jsonl, suite.json, report.md, summary.json, plots; "
                             "an existing folder of the same suite is resumed")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each with its own simulator (and node graph) and its share of the "
                             "cores for torch (OMP_NUM_THREADS, unless exported)")
    parser.add_argument("--max-episodes", type=int, default=None,
                        help="run at most this many of the pending episodes, then report")
    parser.add_argument("--through-ros", action="store_true",
                        help="run every episode through the full node graph (sim bridge and safety monitor "
                             "processes over loopback DDS, each worker in its own domain) instead of "
                             "in-process; the same seeds give the same numbers")
    parser.add_argument("--retry-errors", action="store_true", help="rerun episodes recorded as crashed")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report of --out")


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the suite, then write the report; see the module docstring for the exit status.

    Raises:
        ConfigError: bad suite file, a results folder of another suite, or a corrupt results file.
    """
    from safevla_node.evaluation.report import write_report
    from safevla_node.evaluation.runner import InProcessExecutor, load_records, run_suite
    from safevla_node.evaluation.suite import load_suite

    suite = load_suite(args.suite)
    interrupted = False
    if not args.report_only:
        factory = InProcessExecutor
        if args.through_ros:
            from safevla_node.nodes.graph_executor import RosGraphExecutor

            factory = RosGraphExecutor
        result = run_suite(suite, args.out, workers=args.workers, max_episodes=args.max_episodes,
                           retry_errors=args.retry_errors, executor_factory=factory)
        interrupted = result.interrupted
    records = list(load_records(args.out).values())
    files = write_report(records, args.out, title=suite.name)
    crashed = sum(r.error is not None for r in records)
    print(f"{len(records)} episodes recorded ({crashed} crashed); report: {files.markdown}")
    if interrupted:
        return 130
    return 1 if crashed else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m safevla_node.evaluation``)."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="safevla eval", description=HELP)
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SafeVLAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


add_subcommand("eval", HELP, configure, run)
