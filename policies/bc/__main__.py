"""Command line of behaviour cloning: ``python -m policies.bc collect|train ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import sys

from safevla_node.errors import SafeVLAError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m policies.bc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    col = sub.add_parser("collect", help="record the privileged expert into uint8 npz shards (resumable)")
    col.add_argument("--episodes", type=int, required=True, help="episodes to plan (tasks round-robin)")
    col.add_argument("--out", required=True, help="dataset folder (rerun the same command to resume)")
    col.add_argument("--workers", type=int, default=1, help="simulator processes (default 1)")
    col.add_argument("--first-seed", type=int, default=1000,
                     help="scene seed of episode 0; episode i uses first_seed + i (default 1000; evaluate "
                          "on seeds outside this range)")
    col.add_argument("--noise", type=float, default=0.1, help="DAgger-style noise probability (default 0.1)")
    col.add_argument("--difficulty", default="easy", choices=("easy", "medium", "hard"))
    col.add_argument("--max-steps", type=int, default=200, help="cut an episode after this many steps")
    col.add_argument("--policy-config", default="config/policy_tiny.yaml",
                     help="policy YAML whose image input size sets the camera size")
    trn = sub.add_parser("train", help="teacher-forced BC of the tiny SafeVLA (resumable)")
    trn.add_argument("--data", required=True, help="dataset folder written by collect")
    trn.add_argument("--config", default="config/train_bc.yaml", help="training YAML")
    trn.add_argument("--out", required=True, help="where the final policy is saved (our checkpoint format)")
    trn.add_argument("--state", default="runs/bc_state",
                     help="folder for periodic training state (weights + optimizer) used by --resume")
    trn.add_argument("--resume", action="store_true", help="continue from STATE/last.pt")
    trn.add_argument("--stop-after", type=int,
                     help="stop (state saved, resumable) after this many optimisation steps in total")
    return parser


def _collect(args: argparse.Namespace) -> None:
    from policies.bc.collect import CollectSettings, collect
    from policies.configuration_safevla import load_policy_config

    image = load_policy_config(args.policy_config).image_encoder
    camera = (image.image_width, image.image_height)
    settings = CollectSettings(camera, args.difficulty, args.noise, args.max_steps)
    summaries = collect(args.out, args.episodes, settings, first_seed=args.first_seed, workers=args.workers)
    recorded = [s for s in summaries if not s.skipped]
    print(f"recorded {len(recorded)} episodes ({sum(s.steps for s in recorded)} steps, "
          f"{sum(s.success for s in recorded)} expert successes), skipped {len(summaries) - len(recorded)}; "
          f"dataset {args.out}")


def _train(args: argparse.Namespace) -> None:
    from policies.bc.configuration_bc import load_train_config
    from policies.bc.train import train

    result = train(args.data, load_train_config(args.config), args.out, state_dir=args.state,
                   resume=args.resume, stop_after=args.stop_after)
    print(f"trained {result.steps} steps (final loss {result.loss:.4f}, accuracy {result.accuracy:.3f}); "
          f"policy saved to {result.out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints a project error and returns 1 instead of a traceback."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        (_collect if args.command == "collect" else _train)(args)
    except SafeVLAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
