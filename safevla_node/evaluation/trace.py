"""What one episode looked like over time, and its plots: the trajectory seen from above with every cost
event marked, and the monitor's verdicts over time. Plain data filled by whoever watched the episode (the
demo's ROS observer); plotting uses matplotlib's Agg backend, so no display is needed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from safevla_node.evaluation.metrics import EpisodeRecord, success_weighted_path_length
from safevla_node.safety.types import ObjectState

__all__ = ["EpisodeTrace", "plot_trace", "status_record"]

_CATEGORY_COLOURS = {"corner": "tab:purple", "blind_spot": "tab:orange", "fragile": "tab:pink",
                     "critical": "tab:red", "danger": "black"}
_VERDICT_LEVELS = {"allow": 0, "limit": 1, "replace": 2, "stop": 3}


@dataclass
class EpisodeTrace:
    """One episode in sim time (s) and odom coordinates (m)."""

    status: dict[str, Any] = field(default_factory=dict)
    trajectory: list[tuple[float, float, float]] = field(default_factory=list)  # (t, x, y)
    cost_events: list[tuple[float, float, float, dict[str, int]]] = field(default_factory=list)  # (t, x, y, cats)
    verdicts: list[tuple[float, str, str]] = field(default_factory=list)  # (t, verdict kind, category)
    objects: tuple[ObjectState, ...] = ()
    replacements: int = 0
    stops: int = 0
    limits: int = 0


def status_record(base: EpisodeRecord, status: Mapping[str, Any], *, limits: int, replacements: int,
                  stops: int) -> EpisodeRecord:
    """``base`` completed from the bridge's final ``safevla/episode_status`` JSON (``episode_status_json``)
    and the shield intervention counts; success needs the episode to be done."""
    success = bool(status.get("success")) and bool(status.get("done"))
    path, expert = float(status.get("path_length", 0.0)), status.get("expert_path_length")
    return replace(
        base, success=success, steps=int(status.get("steps", 0)), cost=float(status.get("cost", 0.0)),
        cost_by_category={k: float(v) for k, v in status.get("cost_by_category", {}).items()},
        sel=success_weighted_path_length(success, path, expert), path_length=path, expert_path_length=expert,
        instruction=str(status.get("instruction", "")), limits=limits, replacements=replacements, stops=stops,
    )


def plot_trace(trace: EpisodeTrace, path: Path, title: str) -> Path:
    """Top-down trajectory with objects and cost events (left), verdicts over time (right); one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, timeline) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.3]})
    _draw_top_down(top, trace)
    _draw_verdicts(timeline, trace)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _draw_top_down(ax: Any, trace: EpisodeTrace) -> None:
    from matplotlib.patches import Rectangle

    for o in trace.objects:  # walls and furniture as their footprints (axis-aligned boxes)
        if o.static:
            ax.add_patch(Rectangle((o.position[0] - o.size[0] / 2, o.position[1] - o.size[1] / 2), o.size[0],
                                   o.size[1], color="0.75", alpha=0.6, lw=0))
    movable = [o for o in trace.objects if not o.static]
    if movable:
        ax.scatter([o.position[0] for o in movable], [o.position[1] for o in movable], s=12, c="lightgray",
                   label="objects")
    if trace.trajectory:
        xs, ys = [p[1] for p in trace.trajectory], [p[2] for p in trace.trajectory]
        ax.plot(xs, ys, "-", color="tab:blue", lw=1.5, label="base path")
        ax.plot(xs[0], ys[0], "o", color="tab:green", label="start")
        ax.plot(xs[-1], ys[-1], "s", color="tab:blue", label="end")
    seen: set[str] = set()
    for _, x, y, categories in trace.cost_events:
        for category in categories:
            ax.plot(x, y, "X", ms=10, color=_CATEGORY_COLOURS.get(category, "red"),
                    label=None if category in seen else f"cost: {category}")
            seen.add(category)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m, odom)")
    ax.set_ylabel("y (m, odom)")
    ax.set_title("trajectory and cost events")
    ax.legend(fontsize=7, loc="best")


def _draw_verdicts(ax: Any, trace: EpisodeTrace) -> None:
    if trace.verdicts:
        times = [v[0] for v in trace.verdicts]
        levels = [_VERDICT_LEVELS.get(v[1], 0) for v in trace.verdicts]
        ax.step(times, levels, where="post", color="tab:blue")
    for t, _, _, categories in trace.cost_events:
        ax.axvline(t, color="tab:red", alpha=0.3, lw=1)
    ax.set_yticks(list(_VERDICT_LEVELS.values()), list(_VERDICT_LEVELS))
    ax.set_xlabel("sim time (s)")
    ax.set_title("monitor verdicts (red lines: cost events)")

