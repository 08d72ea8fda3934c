"""``safevla train``: constrained PPO fine-tuning (the work is in ``policies.training``; torch loads lazily)."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``train`` on the ``safevla`` command."""
    from policies.training.launch import add_arguments

    parser = subparsers.add_parser(
        "train", help="fine-tune a policy with Lagrangian PPO on the embedded simulator",
        description="Constrained PPO (Lagrange or PID multipliers). Multi-GPU: "
                    "torchrun --nproc_per_node=N -m policies.training with the same options.")
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the training the parsed arguments describe; the exit code."""
    from policies.training.launch import run_from_args

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stdout)
    return run_from_args(args)
