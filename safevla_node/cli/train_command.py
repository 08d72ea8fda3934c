"""``safevla train``: constrained PPO fine-tuning (the work is in ``policies.training``; torch loads lazily)."""

from __future__ import annotations

import argparse
import logging
import sys

from safevla_node.cli import add_subcommand

__all__ = ["HELP", "add_arguments", "run"]

HELP = ("fine-tune a policy with Lagrangian PPO on the embedded simulator "
        "(multi-GPU: torchrun --nproc_per_node=N -m policies.training with the same options)")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The training options, shared with ``python -m policies.training`` (defined here to keep torch lazy)."""
    parser.add_argument("--config", required=True, help="training YAML (e.g. config/train_finetune.yaml)")
    parser.add_argument("--out", required=True, help="run directory: checkpoint, metrics.csv, tb/, policy/")
    parser.add_argument("--init", default=None, help="policy checkpoint to start from (overrides policy.init)")
    parser.add_argument("--updates", type=int, default=None, help="override the number of PPO updates")
    parser.add_argument("--device", default=None, help="override the learner's torch device (cpu, cuda, auto)")
    parser.add_argument("--time-limit-min", type=float, default=None,
                        help="override time_limit_min: stop cleanly (checkpoint + policy export) after this "
                             "many minutes")
    parser.add_argument("--fresh", action="store_true", help="ignore a checkpoint already in --out")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the training the parsed arguments describe; the exit code."""
    from policies.training.launch import run_from_args

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stdout)
    return run_from_args(args)


add_subcommand("train", HELP, add_arguments, run)
