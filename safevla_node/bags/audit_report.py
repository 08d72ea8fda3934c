"""The audit's result and its three renderings: JSON (for tools), markdown (for people), a timeline PNG.

Times are seconds since the bag's first message (receive time). The JSON holds no wall-clock figures
except under ``performance``, so two audits of one bag compare equal everywhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safevla_node.safety.types import COST_CATEGORIES, Category, VerdictKind

__all__ = ["AuditReport", "Interval", "SourceHealth"]

#: Risk categories shown in tables and plots: the five cost categories, then the shield-only ones.
_CATEGORIES: tuple[Category, ...] = (*COST_CATEGORIES, Category.COLLISION, Category.FAULT)


@dataclass
class Interval:
    """Consecutive control ticks with the same non-ALLOW verdict kind and category.

    Attributes:
        start_s, end_s: first and last tick (s since the bag's start).
        kind: STOP / LIMIT / REPLACE.
        category: the rule's category.
        reason: the first tick's reason.
        ticks: number of ticks.
        commanded_ticks: ticks where a non-zero base command was active (the robot was asked to move).
        end_index: index of the last tick (internal, for merging).
    """

    start_s: float
    end_s: float
    kind: str
    category: Category | None
    reason: str
    ticks: int
    commanded_ticks: int
    end_index: int

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4), "kind": self.kind,
                "category": self.category.value if self.category else None, "reason": self.reason,
                "ticks": self.ticks, "commanded_ticks": self.commanded_ticks}


@dataclass(frozen=True)
class SourceHealth:
    """Arrival statistics of one audited topic.

    Attributes:
        role: scan / costmap / odom / joint_states / command / clock.
        topic: the bag topic.
        count: messages fed.
        median_period_s: median inter-arrival time (None with fewer than two messages).
        max_gap_s: longest inter-arrival time.
        gaps: (start s, length s) of gaps over ``gap_factor`` median periods (and over the source timeout).
        stale_s: control time the monitor saw this source older than its timeout (sensors only).
        required: the monitor required it.
        malformed: messages the monitor would have dropped, with the reason.
        frames: header frame ids seen.
    """

    role: str
    topic: str
    count: int
    median_period_s: float | None
    max_gap_s: float | None
    gaps: list[tuple[float, float]]
    stale_s: float | None
    required: bool
    malformed: list[str]
    frames: list[str]


@dataclass
class AuditReport:
    """Everything one audit found; see ``run_audit``."""

    bag: str
    storage: str
    ros_distro: str
    start_ns: int
    duration_s: float
    message_count: int
    topics: dict[str, tuple[str, int]]
    inputs: dict[str, str]
    lacks: list[str]
    notes: list[str]
    warnings: list[str]
    errors: list[str]
    required_sources: list[str]
    control_rate_hz: float
    header_offset_s: float | None
    sim_clock_s: tuple[float, float] | None
    times: np.ndarray
    kinds: np.ndarray
    commands: np.ndarray
    risks: dict[Category, np.ndarray]
    ages: dict[str, np.ndarray]
    timeouts: dict[str, float]
    intervals: list[Interval]
    sources: list[SourceHealth]
    wall_s: float = field(default=0.0)

    # --- derived -------------------------------------------------------------------------------------------

    def verdict_counts(self) -> dict[str, int]:
        """Control ticks per verdict kind."""
        return {k.name: int(np.count_nonzero(self.kinds == int(k))) for k in VerdictKind}

    def interventions(self) -> list[Interval]:
        """Intervals that would have stopped, limited or replaced a commanded motion."""
        return [i for i in self.intervals if i.commanded_ticks]

    def risk_summary(self) -> dict[str, dict[str, float]]:
        """Per category: the largest predicted risk and the fraction of ticks where the rule fired."""
        out = {}
        for cat in _CATEGORIES:
            values = self.risks.get(cat, np.zeros(0))
            out[cat.value] = {"max": round(float(values.max()), 4) if values.size else 0.0,
                              "fired_fraction": round(float(np.mean(values >= 1.0)), 4) if values.size else 0.0}
        return out

    @property
    def realtime_factor(self) -> float:
        """Bag duration over audit wall time."""
        return self.duration_s / self.wall_s if self.wall_s > 0 else math.inf

    # --- renderings ----------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (the per-tick timeline is in the plot, not here)."""
        return {
            "bag": self.bag, "storage": self.storage, "ros_distro": self.ros_distro, "start_ns": self.start_ns,
            "duration_s": round(self.duration_s, 4), "message_count": self.message_count,
            "topics": {k: {"type": t, "count": c} for k, (t, c) in self.topics.items()},
            "inputs": self.inputs, "lacks": self.lacks, "notes": self.notes, "warnings": self.warnings,
            "errors": self.errors,
            "monitor": {"required_sources": self.required_sources, "control_rate_hz": self.control_rate_hz},
            "clock": {"header_minus_receive_s": _round(None if self.header_offset_s is None else -self.header_offset_s),
                      "header_stamps": self._header_clock(), "sim_clock_s": self.sim_clock_s},
            "verdict_counts": self.verdict_counts(),
            "interventions": [i.to_json() for i in self.interventions()],
            "intervals": [i.to_json() for i in self.intervals],
            "risk": self.risk_summary(),
            "sources": [
                {"role": s.role, "topic": s.topic, "count": s.count, "required": s.required,
                 "median_period_s": _round(s.median_period_s), "max_gap_s": _round(s.max_gap_s),
                 "gaps": [[round(a, 3), round(b, 3)] for a, b in s.gaps], "stale_s": _round(s.stale_s),
                 "malformed": s.malformed, "frames": s.frames}
                for s in self.sources],
            "performance": {"wall_s": round(self.wall_s, 4), "realtime_factor": round(self.realtime_factor, 1)},
        }

    def _header_clock(self) -> str:
        if self.header_offset_s is None:
            return "no stamped messages"
        if abs(self.header_offset_s) > 1e6:
            return "sim time (the audit clocks the monitor by receive time)"
        return "wall time"

    def to_markdown(self) -> str:
        """A human-readable report."""
        counts = self.verdict_counts()
        lines = [f"# Safety audit of `{self.bag}`", "",
                 f"{self.storage}, {self.ros_distro or 'distro not recorded'}, {self.duration_s:.2f} s, "
                 f"{self.message_count} messages; monitor at {self.control_rate_hz:g} Hz requiring "
                 f"{', '.join(self.required_sources) or 'nothing'}; header stamps: {self._header_clock()}.", "",
                 "## Inputs", ""]
        lines += [f"- {role}: `{topic}`" for role, topic in self.inputs.items()]
        sections = (("What the bag lacks", self.lacks), ("Notes", self.notes), ("Reader warnings", self.warnings),
                    ("Errors (report covers what was read)", self.errors))
        for title, items in sections:
            if items:
                lines += ["", f"## {title}", "", *[f"- {x}" for x in items]]
        lines += ["", "## Verdicts", "", "| kind | ticks |", "|---|---|",
                  *[f"| {k} | {n} |" for k, n in counts.items()], "",
                  "## Verdicts that would have stopped or limited the robot", ""]
        if self.intervals:
            lines += ["| from (s) | to (s) | kind | category | ticks | while commanded | reason |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {i.start_s:.2f} | {i.end_s:.2f} | {i.kind} | {i.category.value if i.category else ''} | "
                      f"{i.ticks} | {i.commanded_ticks} | {i.reason} |" for i in self.intervals]
        else:
            lines.append("None: every tick allowed the command.")
        lines += ["", "## Predicted risk per category", "", "| category | max | fired (fraction of ticks) |",
                  "|---|---|---|"]
        lines += [f"| {c} | {v['max']:.2f} | {v['fired_fraction']:.3f} |" for c, v in self.risk_summary().items()]
        lines += ["", "## Input health", "",
                  "| role | topic | msgs | median period (s) | max gap (s) | gaps | stale (s) | required | malformed "
                  "| frames |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in self.sources:
            gaps = ", ".join(f"{a:.2f}+{b:.2f}" for a, b in s.gaps[:5]) + (" ..." if len(s.gaps) > 5 else "")
            lines.append(f"| {s.role} | `{s.topic}` | {s.count} | {_fmt(s.median_period_s)} | "
                         f"{_fmt(s.max_gap_s)} | {gaps or '-'} | {_fmt(s.stale_s)} | "
                         f"{'yes' if s.required else 'no'} | {len(s.malformed)} | "
                         f"{', '.join(s.frames) or '-'} |")
        lines += ["", f"Audited in {self.wall_s:.3f} s ({self.realtime_factor:.0f}x real time).", ""]
        return "\n".join(lines)

    def write_plot(self, path: Path) -> None:
        """Timeline PNG: verdict kind, predicted risk per category, sensor ages against their timeouts."""
        import matplotlib  # noqa: PLC0415 (only when a plot is asked for)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig, (ax_v, ax_r, ax_a) = plt.subplots(3, 1, sharex=True, figsize=(11, 7.5))
        ax_v.step(self.times, self.kinds, where="post", color="tab:red", label="verdict")
        ax_v.set_yticks([int(k) for k in VerdictKind], [k.name for k in VerdictKind])
        ax_c = ax_v.twinx()
        ax_c.plot(self.times, self.commands, color="tab:blue", alpha=0.6, label="commanded linear x (m/s)")
        ax_c.set_ylabel("m/s")
        ax_v.set_title(Path(self.bag).name)
        for cat in _CATEGORIES:
            values = self.risks.get(cat)
            if values is not None and values.size and values.max() > 0:
                ax_r.plot(self.times, values, label=cat.value)
        ax_r.set_ylabel("predicted risk")
        ax_r.set_ylim(-0.05, 1.05)
        ax_r.legend(loc="upper right", fontsize="small")
        cap = 2.0 * max(self.timeouts.values(), default=1.0)
        for name, ages in self.ages.items():
            # never received (inf) shows at the cap
            (line,) = ax_a.plot(self.times, np.minimum(ages, cap), label=f"{name} age")
            ax_a.axhline(self.timeouts[name], color=line.get_color(), linestyle="--", linewidth=0.8)
        ax_a.set_ylabel(f"age (s, capped at {cap:g}); dashed: timeout")
        ax_a.set_xlabel("bag time (s)")
        ax_a.legend(loc="upper right", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def write(self, folder: Path) -> dict[str, Path]:
        """Write ``audit.md``, ``audit.json`` and ``timeline.png`` into ``folder`` (created if needed)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": folder / "audit.md", "json": folder / "audit.json", "plot": folder / "timeline.png"}
        paths["markdown"].write_text(self.to_markdown())
        paths["json"].write_text(json.dumps(self.to_json(), indent=2))
        self.write_plot(paths["plot"])
        return paths


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

