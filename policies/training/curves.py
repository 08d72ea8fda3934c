"""Training curves of a run folder: ``metrics.csv`` drawn as ``curves.png``.

Per-update statistics of a short run are noisy (a few finished episodes per update), so each panel shows the
raw values faintly and a trailing mean over ``window`` updates on top. The trainer draws the curves at the end
of every run; ``python -m policies.training.curves RUN_DIR`` draws them for a run in progress or one copied
from another machine. matplotlib (Agg) is imported only here.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from pathlib import Path

from safevla_node.errors import TrainingError

__all__ = ["CURVES_FILE", "plot_curves", "read_metrics", "trailing_mean"]

CURVES_FILE = "curves.png"


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv`` as floats (empty cells as NaN).

    Raises:
        TrainingError: a missing or empty file, or a cell that is not a number (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path} not found: give a training run folder (it holds metrics.csv)")
    rows: list[dict[str, float]] = []
    with path.open(newline="") as f:
        for number, raw in enumerate(csv.DictReader(f), 2):
            try:
                rows.append({k: float(v) if v != "" else math.nan for k, v in raw.items()})
            except ValueError as exc:
                raise TrainingError(f"{path}:{number}: {exc}") from None
    if not rows:
        raise TrainingError(f"{path} holds no updates yet")
    return rows


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last ``window`` finite values up to each position (NaN until one is finite)."""
    out: list[float] = []
    for i in range(len(values)):
        recent = [v for v in values[max(0, i - window + 1):i + 1] if math.isfinite(v)]
        out.append(sum(recent) / len(recent) if recent else math.nan)
    return out


def plot_curves(rows: Sequence[dict[str, float]], out_png: str | Path, title: str = "", window: int = 5) -> Path:
    """Draw success rate, episode cost (total and per category), the multipliers and the policy's entropy and KL
    to its starting policy against env steps (the last panel is what shows a policy collapsing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["env_steps"] for r in rows]
    costs = sorted(k for k in rows[0] if k.startswith("cost_") and k != "cost_total" and not k.endswith("_loss"))
    lambdas = sorted(k for k in rows[0] if k.startswith("lambda_"))
    spread = [k for k in ("entropy", "kl_to_reference") if k in rows[0]]  # older runs lack the KL
    smoothing = f" (trailing mean over {window} updates)"
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    panels = ((axes[0], ["success_rate"], "success rate"), (axes[1], ["cost_total", *costs], "episode cost"),
              (axes[2], lambdas, "Lagrange multiplier"), (axes[3], spread, "nats per step"))
    for ax, keys, label in panels:
        for key in keys:
            values = [r[key] for r in rows]
            (line,) = ax.plot(steps, trailing_mean(values, window), label=key.removeprefix("cost_"),
                              linewidth=2.0 if key in ("success_rate", "cost_total") else 1.0)
            if key in ("success_rate", "cost_total"):
                ax.plot(steps, values, color=line.get_color(), alpha=0.25, linewidth=1.0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    axes[0].set_title("success" + smoothing, fontsize=9)
    axes[1].set_title("cost per finished episode" + smoothing, fontsize=9)
    axes[2].set_title("multiplier after each update", fontsize=9)
    axes[3].set_title("entropy, KL to the start" + smoothing, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m policies.training.curves RUN_DIR [--window N]``: write RUN_DIR/curves.png."""
    parser = argparse.ArgumentParser(prog="python -m policies.training.curves", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="training run folder (holds metrics.csv)")
    parser.add_argument("--window", type=int, default=5, help="updates in the trailing mean (default 5)")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    try:
        out = plot_curves(read_metrics(run / "metrics.csv"), run / CURVES_FILE, title=run.name, window=args.window)
    except TrainingError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
