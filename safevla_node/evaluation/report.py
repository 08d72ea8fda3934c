"""Reports of a results folder: summary JSON, a markdown report in the paper's table layouts, PNG plots.

Tables (SafeVLA, arXiv 2503.03480):
  * main: rows = policy x shield, columns = ObjNav / PickUp / Fetch SR / CC (feasible, unperturbed episodes);
  * detail: per row SR with its Wilson interval, CC, SEL and length with bootstrap intervals, share of
    catastrophic episodes (CC > 10) and the cost-success correlation (the paper's "decoupling");
  * OOD: per policy x shield, rows = perturbation, columns = task CC (feasible episodes);
  * extreme failure: average CC on infeasible tasks;
  * shield effect: SR and CC with the shield off and on over the same episodes, and interventions.
Plots: CC distributions with and without the shield, mean CC per category, SR vs CC, CC of successful vs
failed episodes. matplotlib (Agg backend) is imported only when plots are drawn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safevla_node.evaluation.metrics import (
    CATASTROPHIC_CC,
    EpisodeRecord,
    Interval,
    aggregate,
    group_by,
    shield_effect,
)
from safevla_node.evaluation.suite import PERTURBATIONS
from safevla_node.safety.types import COST_CATEGORIES
from sim_bridge.interface import TaskKind

__all__ = ["ReportFiles", "summarize", "write_report"]

_TASK_TITLES = {
    TaskKind.OBJECT_NAV.value: "ObjNav", TaskKind.PICKUP.value: "PickUp", TaskKind.FETCH.value: "Fetch",
}
_TASKS = tuple(_TASK_TITLES)

Row = tuple[str, bool]


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote."""

    summary: Path
    markdown: Path
    plots: tuple[Path, ...]


def _row(r: EpisodeRecord) -> Row:
    return (r.policy, r.shield)


def _row_label(row: Row) -> str:
    return f"{row[0]} + shield" if row[1] else row[0]


def _main(records: Sequence[EpisodeRecord]) -> list[EpisodeRecord]:
    return [r for r in records if r.feasible and r.perturbation == "none"]


def _rows(records: Sequence[EpisodeRecord]) -> list[Row]:
    return sorted({_row(r) for r in records})


def summarize(records: Sequence[EpisodeRecord], seed: int = 0) -> dict[str, object]:
    """Every aggregate the report shows, as plain data (NaN as null)."""
    main = _main(records)
    infeasible = [r for r in records if not r.feasible]
    feasible = [r for r in records if r.feasible]
    return {
        "episodes": len(records),
        "errors": [{"key": r.key, "error": r.error} for r in records if r.error is not None],
        "main": {
            _row_label(row): {
                "all": aggregate(group, seed).to_dict(),
                **{task: aggregate([r for r in group if r.task == task], seed).to_dict() for task in _TASKS},
            }
            for row, group in sorted(group_by(main, _row).items())
        },
        "ood": {
            _row_label(row): {
                p: {
                    t: aggregate([r for r in group if r.perturbation == p and r.task == t], seed).to_dict()
                    for t in _TASKS
                }
                for p in PERTURBATIONS if any(r.perturbation == p for r in group)
            }
            for row, group in sorted(group_by(feasible, _row).items())
        },
        "extreme_failure": {
            _row_label(row): aggregate(group, seed).to_dict()
            for row, group in sorted(group_by(infeasible, _row).items())
        },
        "shield_effect": {
            policy: shield_effect(group, seed).to_dict()
            for policy, group in sorted(group_by(records, lambda r: r.policy).items())
        },
    }


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _fmt_interval(interval: Interval) -> str:
    return f"{_fmt(interval.value)} [{_fmt(interval.low)}, {_fmt(interval.high)}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _main_table(records: Sequence[EpisodeRecord], seed: int) -> list[str]:
    main = _main(records)
    body = []
    for row in _rows(main):
        cells = [_row_label(row)]
        for task in _TASKS:
            agg = aggregate([r for r in main if _row(r) == row and r.task == task], seed)
            cells.append(f"{_fmt(agg.sr.value, 3)} / {_fmt(agg.cc.value)}" if agg.episodes else "–")
        body.append(cells)
    return _table(["Policy", *(f"{_TASK_TITLES[t]} SR↑/CC↓" for t in _TASKS)], body)


def _detail_table(records: Sequence[EpisodeRecord], seed: int) -> list[str]:
    body = []
    for row in _rows(_main(records)):
        agg = aggregate([r for r in _main(records) if _row(r) == row], seed)
        body.append([
            _row_label(row), str(agg.episodes), str(agg.errors),
            _fmt_interval(agg.sr), _fmt_interval(agg.cc), _fmt_interval(agg.sel),
            _fmt(agg.length.value, 1), _fmt(agg.catastrophic), _fmt(agg.cost_success_correlation),
            _fmt(agg.cc_success), _fmt(agg.cc_failure), _fmt(agg.interventions, 1),
        ])
    header = ["Policy", "n", "errors", "SR [95% CI]", "CC [95% CI]", "SEL [95% CI]", "steps",
              f"CC>{CATASTROPHIC_CC:g}", "corr(CC, success)", "CC success", "CC failure", "interventions"]
    return _table(header, body)


def _ood_tables(records: Sequence[EpisodeRecord], seed: int) -> list[str]:
    feasible = [r for r in records if r.feasible]
    lines: list[str] = []
    for row in _rows(feasible):
        group = [r for r in feasible if _row(r) == row]
        perturbations = [p for p in PERTURBATIONS if any(r.perturbation == p for r in group)]
        if perturbations == ["none"]:
            continue
        body = []
        for p in perturbations:
            cells = [p if p == "none" else f"+{p}"]
            for task in _TASKS:
                agg = aggregate([r for r in group if r.perturbation == p and r.task == task], seed)
                cells.append(_fmt(agg.cc.value) if agg.episodes else "–")
            body.append(cells)
        header = ["Perturbation", *(f"{_TASK_TITLES[t]} CC" for t in _TASKS)]
        lines += [f"**{_row_label(row)}**", "", *_table(header, body), ""]
    return lines or ["No perturbed episodes in these results.", ""]


def _extreme_table(records: Sequence[EpisodeRecord], seed: int) -> list[str]:
    infeasible = [r for r in records if not r.feasible]
    body = []
    for row in _rows(infeasible):
        agg = aggregate([r for r in infeasible if _row(r) == row], seed)
        body.append([_row_label(row), str(agg.episodes), _fmt(agg.cc.value), _fmt(agg.sr.value),
                     _fmt(agg.catastrophic), _fmt(agg.length.value, 1)])
    if not body:
        return ["No infeasible episodes in these results.", ""]
    return [*_table(["Policy", "n", "Avg. CC", "SR", f"CC>{CATASTROPHIC_CC:g}", "steps"], body), ""]


def _shield_table(records: Sequence[EpisodeRecord], seed: int) -> list[str]:
    body = []
    for policy, group in sorted(group_by(records, lambda r: r.policy).items()):
        effect = shield_effect(group, seed)
        if effect.pairs:
            body.append([str(policy), str(effect.pairs), _fmt(effect.sr_off), _fmt(effect.sr_on),
                         _fmt_interval(effect.sr_cost), _fmt(effect.cc_off), _fmt(effect.cc_on),
                         _fmt_interval(effect.cc_change), _fmt(effect.interventions, 1)])
    if not body:
        return ["No episode ran with the shield both off and on.", ""]
    return [*_table(["Policy", "pairs", "SR off", "SR on", "SR cost (off - on) [95% CI]", "CC off", "CC on",
                     "CC change (on - off) [95% CI]", "interventions / episode"], body), ""]


# --- plots ------------------------------------------------------------------------------------------------


def _plot_cc_distribution(ax: Any, records: Sequence[EpisodeRecord]) -> None:
    rows = _rows(records)
    data = [[r.cost for r in records if _row(r) == row] for row in rows]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(rows) + 1), [_row_label(row) for row in rows], rotation=30, ha="right")
    ax.axhline(CATASTROPHIC_CC, color="red", linestyle="--", linewidth=1, label=f"CC = {CATASTROPHIC_CC:g}")
    ax.set_ylabel("episode CC")
    ax.set_title("Cumulative cost per episode, shield off vs on")
    ax.legend()


def _plot_categories(ax: Any, records: Sequence[EpisodeRecord]) -> None:
    rows = _rows(records)
    width = 0.8 / max(1, len(rows))
    names = [c.value for c in COST_CATEGORIES]
    for k, row in enumerate(rows):
        agg = aggregate([r for r in records if _row(r) == row])
        xs = [i + k * width for i in range(len(names))]
        ax.bar(xs, [agg.cost_by_category[n] for n in names], width, label=_row_label(row))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    ax.set_ylabel("mean CC per episode")
    ax.set_title("Cost by Safety-CHORES category")
    ax.legend(fontsize="small")


def _plot_sr_cc(ax: Any, records: Sequence[EpisodeRecord]) -> None:
    for row in _rows(records):
        points = []
        for task in _TASKS:
            agg = aggregate([r for r in records if _row(r) == row and r.task == task])
            if agg.episodes:
                points.append((agg.cc.value, agg.sr.value, _TASK_TITLES[task]))
        ax.scatter([p[0] for p in points], [p[1] for p in points], label=_row_label(row))
        for x, y, text in points:
            ax.annotate(text, (x, y), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mean CC")
    ax.set_ylabel("SR")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Success rate vs cost (per task)")
    ax.legend(fontsize="small")


def _plot_success_failure(ax: Any, records: Sequence[EpisodeRecord]) -> None:
    rows = _rows(records)
    aggs = [aggregate([r for r in records if _row(r) == row]) for row in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [0.0 if math.isnan(a.cc_success) else a.cc_success for a in aggs], 0.4,
           label="successful episodes")
    ax.bar([x + 0.2 for x in xs], [0.0 if math.isnan(a.cc_failure) else a.cc_failure for a in aggs], 0.4,
           label="failed episodes")
    ax.set_xticks(list(xs), [_row_label(row) for row in rows], rotation=30, ha="right")
    ax.set_ylabel("mean CC")
    ax.set_title("Cost of successful vs failed episodes")
    ax.legend(fontsize="small")


_PLOTS: tuple[tuple[str, Callable[[Any, Sequence[EpisodeRecord]], None]], ...] = (
    ("cc_distribution.png", _plot_cc_distribution),
    ("cost_by_category.png", _plot_categories),
    ("sr_vs_cc.png", _plot_sr_cc),
    ("cost_success_vs_failure.png", _plot_success_failure),
)


def _draw_plots(records: Sequence[EpisodeRecord], folder: Path) -> tuple[Path, ...]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.error is None and r.feasible]
    paths = []
    for name, draw in _PLOTS:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if ok:
            draw(ax, ok)
        else:
            ax.text(0.5, 0.5, "no finished feasible episodes", ha="center", va="center")
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return tuple(paths)


def write_report(records: Sequence[EpisodeRecord], out_dir: str | Path, title: str = "Evaluation",
                 seed: int = 0) -> ReportFiles:
    """Write ``summary.json``, ``report.md`` and the PNG plots into ``out_dir``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: r.key)
    summary_path = folder / "summary.json"
    summary_path.write_text(json.dumps(summarize(ordered, seed), indent=2, sort_keys=True) + "\n")
    plots = _draw_plots(ordered, folder)
    errors = [r for r in ordered if r.error is not None]
    lines = [
        f"# {title}", "",
        f"{len(ordered)} episodes, {len(errors)} crashed (excluded from the metrics). "
        "SR: Wilson 95% interval; means: seeded bootstrap 95% interval. "
        "CC: cumulative Safety-CHORES cost.", "",
        "## Main table (feasible, unperturbed)", "", *_main_table(ordered, seed), "",
        "## Detail", "", *_detail_table(ordered, seed), "",
        "## Shield effect (same episodes, shield off vs on)", "", *_shield_table(ordered, seed),
        "## OOD perturbations (CC, feasible episodes)", "", *_ood_tables(ordered, seed),
        "## Extreme failure (infeasible tasks)", "", *_extreme_table(ordered, seed),
        "## Plots", "", *(f"![{p.stem}]({p.name})" for p in plots), "",
    ]
    if errors:
        lines += ["## Crashed episodes", "", *(f"- `{r.key}`: {r.error}" for r in errors), ""]
    markdown = folder / "report.md"
    markdown.write_text("\n".join(lines))
    return ReportFiles(summary_path, markdown, plots)
