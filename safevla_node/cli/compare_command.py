"""``safevla compare``: one policy against another on the episodes both ran, with paired intervals.

Two policies' own intervals overlap at the sample sizes a CPU can afford (60 episodes), yet they ran the very
same episodes, and pairing them removes what those share. This prints the SR and CC of both on the common
episodes, the mean per-episode difference (candidate minus baseline) with its paired bootstrap interval, and
the verdict of the fine-tuning goal (docs/finetuning.md): CC lower (the interval lies below 0) at a
comparable SR (the interval's lower end no further below 0 than ``--sr-margin``).

Records come from results folders (``safevla eval --out``) or episode files (docs/*/eval_episodes.jsonl),
so a candidate evaluated later is compared with the baseline's earlier records, which a deterministic
evaluation reproduces. Episodes pair by seed, task, difficulty, perturbation, feasibility and shield.

Exit status: 0 the comparison was printed, 2 a usage error (unknown policy, no common episode, bad file).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from safevla_node.cli import add_subcommand
from safevla_node.errors import ConfigError

__all__ = ["HELP", "configure", "run"]

HELP = "compare two evaluated policies on their common episodes (paired SR and CC differences)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``safevla compare`` to ``parser``."""
    parser.add_argument("results", type=Path, nargs="+",
                        help="results folders (safevla eval --out) or episode files (.jsonl)")
    parser.add_argument("--baseline", required=True, help="policy name of the baseline (as in the suite)")
    parser.add_argument("--candidate", required=True, help="policy name of the candidate")
    parser.add_argument("--sr-margin", type=float, default=0.05,
                        help="how far below 0 the SR difference's interval may reach for a comparable SR "
                             "(default 0.05: 5 points)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")


def run(args: argparse.Namespace) -> int:
    """Print the comparison; see the module docstring.

    Raises:
        ConfigError: unreadable results, an unknown policy name, no common episode, a bad margin.
    """
    from safevla_node.evaluation.metrics import compare_paired, pair_episodes
    from safevla_node.evaluation.runner import EPISODES_FILE, read_records

    if not 0.0 <= args.sr_margin < 1.0:
        raise ConfigError(f"--sr-margin={args.sr_margin!r} must be in [0, 1)")
    if not 0.0 < args.confidence < 1.0:
        raise ConfigError(f"--confidence={args.confidence!r} must be in (0, 1)")
    records = [r for path in args.results
               for r in read_records(path / EPISODES_FILE if path.is_dir() else path).values()]
    policies = sorted({r.policy for r in records})
    for name in (args.baseline, args.candidate):
        if name not in policies:
            raise ConfigError(f"no episodes of policy {name!r} in {_names(args.results)}; found {policies}")
    try:
        pairs = pair_episodes([r for r in records if r.policy == args.baseline],
                              [r for r in records if r.policy == args.candidate],
                              lambda r: (r.seed, r.task, r.difficulty, r.perturbation, r.feasible, r.shield))
    except ValueError as exc:  # the same policy's episode recorded in two of the files
        raise ConfigError(f"{_names(args.results)}: {exc}") from None
    if not pairs:
        raise ConfigError(f"{args.baseline!r} and {args.candidate!r} have no episode in common (same seed, "
                          "task, difficulty, perturbation, feasibility and shield)")
    c = compare_paired(pairs, args.confidence)
    percent = f"{args.confidence:.0%}"
    sr, cc = c.sr_difference, c.cc_difference
    lower = cc.high < 0.0
    comparable = sr.low >= -args.sr_margin
    print(f"{args.candidate} against {args.baseline}: {c.pairs} common episodes\n"
          f"  SR {c.sr_baseline:.3f} -> {c.sr_candidate:.3f}: difference {sr.value:+.3f} "
          f"[{percent} CI {sr.low:+.3f}, {sr.high:+.3f}]\n"
          f"  CC {c.cc_baseline:.2f} -> {c.cc_candidate:.2f}: difference {cc.value:+.2f} "
          f"[{percent} CI {cc.low:+.2f}, {cc.high:+.2f}]\n"
          f"  CC lower: {'yes' if lower else 'no'} (the interval {'lies' if lower else 'does not lie'} "
          f"below 0)\n"
          f"  SR comparable: {'yes' if comparable else 'no'} (the interval reaches {sr.low:+.3f}; "
          f"the margin is -{args.sr_margin:.3f})\n"
          f"  better by the fine-tuning goal: {'yes' if lower and comparable else 'no'}")
    return 0


def _names(paths: Iterable[Path]) -> str:
    return ", ".join(str(p) for p in paths)


add_subcommand("compare", HELP, configure, run)
