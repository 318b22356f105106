"""The Pareto front of a sweep: clean accuracy vs worst-case robust accuracy, job by job.

A two-objective search (``experiment=pareto_trades``, ``pareto_at``) records its objectives in
the sweep's ``multirun.yaml`` (``hydra.sweeper.objectives``); the report then draws every trial,
the front the search found and, given a grid sweep of the same study (``beta_sweep``), the
grid's frontier at the same number of trials, and compares the two by hypervolume: the area of
the clean x robust unit square the front dominates (higher is better; reference point 0, 0).
Jobs flagged for gradient masking are drawn hollow and never sit on a front. Each job's color
is its defense (its model when the sweep has one defense), its marker the set it belongs to;
the legend sits in the figure. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from robustlab.figures import COLORS, new_figure, save_figure
from robustlab.report.markdown_table import markdown_table
from robustlab.report.plots import (
    LEGEND,
    WIDE_FIGURE,
    PlotOutcome,
    accuracy_limits,
    pareto_front,
)
from robustlab.report.records import RunRecord, as_eps_key
from robustlab.report.tables import job_variants
from robustlab.tracking.results import MASKING_PREFIX

ROBUST_PREFIX = "robust_accuracy/"  # the W&B summary key of a curve: robust_accuracy/<attack>@<eps>


@dataclass
class ParetoPoint:
    """One finished job: its two objectives, whether a masking warning flags it, its knobs,
    its defense and model."""

    job: str
    clean: float
    robust: float
    flagged: bool
    variant: str = ""
    defense: str = ""
    model: str = ""


def search_objective(sweep_dir: str | Path) -> tuple[str, str] | None:
    """``(attack, eps)`` of the robust objective of a search sweep (``multirun.yaml``'s
    ``hydra.sweeper.objectives``, e.g. ``robust_accuracy/worst_case@0.1``); None otherwise."""
    try:
        text = (Path(sweep_dir) / "multirun.yaml").read_text(encoding="utf-8")
        sweeper = yaml.safe_load(text)["hydra"]["sweeper"]
        objectives = [str(o) for o in sweeper.get("objectives") or []]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    for objective in objectives:
        if objective.startswith(ROBUST_PREFIX) and "@" in objective:
            attack, _, eps = objective.removeprefix(ROBUST_PREFIX).rpartition("@")
            return attack, as_eps_key(eps)
    return None


def sweep_points(records: Sequence[RunRecord], attack: str, eps: str) -> list[ParetoPoint]:
    """The finished jobs that have both objectives, in job (trial) order."""
    variants = job_variants(records)
    points = []
    for record in records:
        robust = record.robust_accuracy.get(attack, {}).get(eps)
        if record.ok and record.clean_accuracy is not None and robust is not None:
            flagged = any(w.startswith(MASKING_PREFIX) for w in record.warnings)
            point = ParetoPoint(record.job, record.clean_accuracy, robust, flagged)
            point.variant = variants[record.job]
            point.defense, point.model = record.defense or "", record.model or ""
            points.append(point)
    return points


def front(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The unflagged points no other unflagged point beats on both objectives, by clean."""
    trusted = [p for p in points if not p.flagged]
    return [trusted[i] for i in pareto_front([(p.clean, p.robust) for p in trusted])]


def hypervolume(points: Sequence[ParetoPoint]) -> float:
    """Area of ``[0, 1]^2`` dominated by the unflagged points (both objectives maximised)."""
    area, left = 0.0, 0.0
    for point in front(points):  # clean ascending, robust descending along a front
        area += (point.clean - left) * point.robust
        left = point.clean
    return area


def color_key(points: Sequence[ParetoPoint]) -> str:
    """``"defense"``, or ``"model"`` when the points share one defense but not one model."""
    defenses, models = {p.defense for p in points}, {p.model for p in points}
    return "model" if len(defenses) == 1 and len(models) > 1 else "defense"


@dataclass
class Coloring:
    """The color of each job: by ``key`` (``defense`` or ``model``), one color per value."""

    key: str
    colors: dict[str, str]

    @classmethod
    def of(cls, points: Sequence[ParetoPoint]) -> Coloring:
        key = color_key(points)
        values = dict.fromkeys(getattr(p, key) for p in points)
        return cls(key, {v: COLORS[i % len(COLORS)] for i, v in enumerate(values)})


def _draw_set(
    ax, points: Sequence[ParetoPoint], name: str, coloring: Coloring, marker: str
) -> None:
    """The jobs of one set (filled, or hollow when flagged), one color per defense or model,
    and the set's front as a dark line."""
    for value, color in coloring.colors.items():
        mine = [p for p in points if getattr(p, coloring.key) == value]
        trusted = [p for p in mine if not p.flagged]
        if trusted:
            ax.scatter(
                [p.clean for p in trusted],
                [p.robust for p in trusted],
                s=30,
                marker=marker,
                color=color,
                alpha=0.6,
                label=f"{name}: {value or '?'} ({len(trusted)} jobs)",
            )
        flagged = [p for p in mine if p.flagged]
        if flagged:
            ax.scatter(
                [p.clean for p in flagged],
                [p.robust for p in flagged],
                s=40,
                marker=marker,
                facecolors="white",
                edgecolors=color,
                label=f"{name}: {value or '?'}, masking? (off the front)",
            )
    best = front(points)
    if best:
        label = f"{name} front ({len(best)} point{'s' if len(best) > 1 else ''}), "
        label += f"hypervolume {hypervolume(points):.3f}"
        style = "--" if len(best) > 1 else "none"  # one point: a marker, no line to name
        ax.plot(
            [p.clean for p in best],
            [p.robust for p in best],
            linestyle=style,
            marker=marker,
            markersize=9,
            markerfacecolor="none",
            color="black",
            label=label,
            zorder=3,
        )


def plot_pareto(
    search: Sequence[ParetoPoint],
    path: str | Path,
    *,
    attack: str,
    eps: str,
    grid: Sequence[ParetoPoint] | None = None,
) -> PlotOutcome:
    """Every job of the search (and of the grid), each set's front and its hypervolume."""
    title = f"Pareto front (clean vs {attack} @ eps {eps})"
    if not search:
        return PlotOutcome(title, None, f"no finished job has clean and {attack}@{eps} results")
    fig = new_figure(*WIDE_FIGURE)
    ax = fig.subplots()
    everything = [*search, *(grid or [])]
    coloring = Coloring.of(everything)
    _draw_set(ax, search, "search", coloring, "o")
    if grid:
        _draw_set(ax, grid, "grid", coloring, "s")
    ax.set(xlabel="clean accuracy", ylabel=f"robust accuracy ({attack}, eps={eps})")
    ax.set_ylim(*accuracy_limits([p.robust for p in everything]))
    ax.set_title(
        f"{title}\ncolour = {coloring.key}; hollow = gradient masking suspected",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    fig.legend(**LEGEND)
    return PlotOutcome(title, save_figure(fig, path, title))


def _short(variant: str) -> str:
    """``defense.beta=2.0554062603826995`` -> ``defense.beta=2.06``: a search's knobs, readable."""
    parts = []
    for part in variant.split():
        key, _, value = part.partition("=")
        try:
            parts.append(f"{key}={float(value):.3g}")
        except ValueError:
            parts.append(part)
    return " ".join(parts) or "–"


def _front_table(points: Sequence[ParetoPoint]) -> list[str]:
    rows = [
        (f"`{p.job}`", _short(p.variant), f"{100 * p.clean:.1f}", f"{100 * p.robust:.1f}")
        for p in front(points)
    ]
    return markdown_table(["job", "knobs", "clean", "robust"], rows)


def _comparison(search: Sequence[ParetoPoint], grid: Sequence[ParetoPoint]) -> list[str]:
    ours, theirs = hypervolume(search), hypervolume(grid)
    verdict = "the search" if ours > theirs else "the grid" if theirs > ours else "neither"
    return [
        f"At the same number of jobs ({len(search)}), the search's front dominates "
        f"{ours:.3f} of the clean x robust square and the grid's {theirs:.3f}: {verdict} "
        "finds the better trade-off (hypervolume, reference point 0, 0).",
        "",
    ]


def pareto_section(
    search: Sequence[ParetoPoint],
    attack: str,
    eps: str,
    grid: Sequence[ParetoPoint] | None = None,
) -> list[str]:
    """Markdown: the search's front (its knobs and objectives), how many jobs were flagged,
    and, given a grid, which of the two found the better front."""
    lines = [f"## Pareto front (clean vs {attack} @ eps {eps})", ""]
    if not search:
        return lines + ["No finished job has both objectives.", ""]
    flagged = sum(p.flagged for p in search)
    lines += [
        f"{len(search)} job(s); {flagged} flagged for gradient masking and kept off the front; "
        f"hypervolume {hypervolume(search):.3f}.",
        "",
    ]
    lines += _front_table(search)
    if grid:
        lines += ["Grid front:", ""] + _front_table(grid) + _comparison(search, grid)
    return lines
