"""Command-line entry of training, shared by ``python -m policies.training``, torchrun and ``safevla train``.

    python -m policies.training --config config/train_smoke.yaml --out runs/smoke
    torchrun --nproc_per_node=2 -m policies.training --config config/train_smoke.yaml --out runs/smoke
    safevla train --config config/train_finetune.yaml --init CHECKPOINT --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

import torch

from policies.training.config import TrainConfig, load_train_config
from policies.training.distributed import init_distributed, shutdown
from policies.training.trainer import Trainer
from safevla_node.cli.train_command import add_arguments
from safevla_node.errors import SafeVLAError

__all__ = ["main", "run_from_args"]

logger = logging.getLogger(__name__)


def _apply_overrides(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    if args.init is not None:
        config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, init=args.init))
    overrides = {"updates": args.updates, "device": args.device, "time_limit_min": args.time_limit_min}
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def run_from_args(args: argparse.Namespace) -> int:
    """Run one training from parsed arguments; 0 on success, 2 on a configuration or training error."""
    ctx = None
    try:
        config = _apply_overrides(load_train_config(args.config), args)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        ctx = init_distributed(config.device)
        trainer = Trainer(config, args.out, ctx, resume=not args.fresh)
        try:
            summary = trainer.run()
        finally:
            trainer.close()
    except SafeVLAError as exc:
        logger.error("training failed: %s", exc)
        return 2
    finally:
        if ctx is not None:
            shutdown(ctx)
    if ctx.is_main:
        logger.info("done: %d updates, %d environment steps, lambdas %s -> %s", summary["update"],
                    summary["env_steps"], summary["lambdas"], args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m policies.training``."""
    parser = add_arguments(argparse.ArgumentParser(prog="python -m policies.training",
                                                   description="Constrained PPO fine-tuning of SafeVLA"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    return run_from_args(args)
