"""PNG plots of a sweep, drawn from configuration groups (mean ± std over seeds).

Figures are made and saved through [`robustlab.figures`][robustlab.figures] (one style, one
DPI, atomic save). Each function writes one PNG or, when the sweep has nothing to draw, returns
why it did not. Legends sit in the figure, right of the axes (never cut at its edge); colour
tells apart whichever of defense and model the sweep varies; an accuracy axis starts at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from robustlab.figures import COLORS, LINESTYLES, new_figure, panel_grid, save_figure
from robustlab.report.norms import WORST_CASES, budget_axis, curves_by_norm
from robustlab.report.tables import (
    MASKING_MARK,
    ConfigGroup,
    eps_order,
    robust_column,
    sweep_norms,
)


@dataclass
class PlotOutcome:
    """A plot that was written (``path`` set) or skipped (``path`` None, ``note`` says why)."""

    title: str
    path: Path | None
    note: str = ""


def _finite_eps(eps: str) -> bool:
    return math.isfinite(eps_order(eps)[0])


MARKERS = ["o", "s", "^", "D", "v", "P"]
LEGEND = {"loc": "outside right upper", "fontsize": 7}  # in the figure, right of the axes
WIDE_FIGURE = (9.0, 4.5)  # inches of a one-panel plot whose legend takes the figure's right


def style_keys(groups: Sequence[ConfigGroup]) -> tuple[str, str]:
    """``(colour key, line key)``: colour by defense, line style (and marker) by model, unless
    the sweep has one defense and several models (then colour by model), so that the
    configurations never all share one colour."""
    defenses = {g.defense for g in groups}
    models = {g.model for g in groups}
    return ("model", "defense") if len(defenses) == 1 and len(models) > 1 else ("defense", "model")


def _styles(groups: Sequence[ConfigGroup]) -> dict[int, dict]:
    """Per configuration: its colour, line style and marker (see ``style_keys``). A
    masking-flagged configuration gets hollow markers."""
    color_key, line_key = style_keys(groups)
    color_values = list(dict.fromkeys(getattr(g, color_key) for g in groups))
    lines = list(dict.fromkeys(getattr(g, line_key) for g in groups))
    return {
        id(g): {
            "color": COLORS[color_values.index(getattr(g, color_key)) % len(COLORS)],
            "linestyle": LINESTYLES[lines.index(getattr(g, line_key)) % len(LINESTYLES)],
            "marker": MARKERS[lines.index(getattr(g, line_key)) % len(MARKERS)],
            "markerfacecolor": "white" if g.masking else None,
        }
        for g in groups
    }


def accuracy_limits(values: Sequence[float]) -> tuple[float, float]:
    """Axis limits for accuracies: from 0, to a little above the largest (at least 0.1, at
    most 1.02), so an all-zero axis reads 0..0.1, not -0.04..0.04."""
    top = max(values, default=0.0)
    return 0.0, min(1.02, max(0.1, 1.1 * top + 0.02))


def _curve(group: ConfigGroup, attack: str) -> tuple[list[float], list[float], list[float]]:
    """(eps, mean, std) of one configuration under one attack, eps 0 = clean accuracy."""
    eps_list = [e for e in group.robust_eps.get(attack, []) if _finite_eps(e)]
    stats = [group.stats[robust_column(attack, e)] for e in eps_list]
    xs, ys = [float(e) for e in eps_list], [s.mean for s in stats]
    errs = [s.std or 0.0 for s in stats]
    clean = group.stats.get("clean_accuracy")
    if clean is not None and xs and xs[0] > 0:
        xs, ys, errs = [0.0, *xs], [clean.mean, *ys], [clean.std or 0.0, *errs]
    return xs, ys, errs


def _panels(groups: Sequence[ConfigGroup]) -> dict[str, list[str]]:
    """Attacks with a numeric budget, grouped by norm (Linf first, led by its worst case)."""
    attacks = [
        attack
        for group in groups
        for attack, eps_list in group.robust_eps.items()
        if any(_finite_eps(e) for e in eps_list)
    ]
    return curves_by_norm(attacks, sweep_norms(groups), lead=WORST_CASES["Linf"])


def plot_robust_curves(groups: Sequence[ConfigGroup], path: str | Path) -> PlotOutcome:
    """Robust accuracy vs budget, one row of panels per threat model (Linf, L2, L1, then L0
    over pixels changed), one panel per attack (each norm's worst case first), one line per
    configuration: colour = defense, line style = model (budget 0 = clean)."""
    title = "Robust accuracy vs eps"
    by_norm = _panels(groups)
    if not by_norm:
        return PlotOutcome(title, None, "no attack with a numeric eps in any finished job")
    panels = [(norm, attack) for norm, attacks in by_norm.items() for attack in attacks]
    cols = 1 if len(panels) <= 1 else 2
    rows = [min(cols, len(a) - i) for a in by_norm.values() for i in range(0, len(a), cols)]
    fig, axes = panel_grid(len(panels), rows)
    styles = _styles(groups)
    for ax, (norm, attack) in zip(axes, panels, strict=True):
        for group in groups:
            xs, ys, errs = _curve(group, attack)
            if xs:
                style = styles[id(group)]
                ax.errorbar(xs, ys, yerr=errs, capsize=3, label=group.label, **style)
        worst = attack == WORST_CASES.get(norm)
        name = f"worst case over the {norm} attacks" if worst else attack
        ax.set(title=f"{norm}: {name}", xlabel=budget_axis(norm), ylabel="accuracy")
        ax.set_ylim(0.0, 1.02)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, **LEGEND)
    color_key, line_key = style_keys(groups)
    fig.suptitle(
        "Accuracy vs budget, one row per threat model (0 = clean; mean ± std over seeds; "
        f"colour = {color_key}, line = {line_key}; hollow = {MASKING_MARK})",
        fontsize=9,
    )
    description = "; ".join(f"{ax.get_title()} [{ax.get_xlabel()}]" for ax in axes)
    return PlotOutcome(title, save_figure(fig, path, title, description))


def choose_frontier_eps(groups: Sequence[ConfigGroup], attack: str) -> str | None:
    """Default eps of the trade-off plot: the median eps among those most configurations have."""
    counts: dict[str, int] = {}
    for group in groups:
        for eps in group.robust_eps.get(attack, []):
            if _finite_eps(eps) and float(eps) > 0:
                counts[eps] = counts.get(eps, 0) + 1
    if not counts:
        return None
    most = max(counts.values())
    common = sorted((e for e, c in counts.items() if c == most), key=eps_order)
    return common[(len(common) - 1) // 2]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both coordinates (both maximised), by x."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return sorted(front, key=lambda i: points[i][0])


def plot_tradeoff_frontier(
    groups: Sequence[ConfigGroup], path: str | Path, attack: str = "pgd", eps: str | None = None
) -> PlotOutcome:
    """Clean (x) vs robust accuracy at one eps (y); marker area follows training wall time.

    Masking-flagged configurations are drawn hollow and left off the Pareto frontier.
    """
    title = "Trade-off frontier"
    eps = eps if eps is not None else choose_frontier_eps(groups, attack)
    if eps is None:
        return PlotOutcome(title, None, f"no {attack} results with a positive eps")
    title = f"Trade-off frontier ({attack}, eps={eps})"
    column = robust_column(attack, eps)
    points = [
        g for g in groups if g.mean("clean_accuracy") is not None and g.mean(column) is not None
    ]
    if not points:
        return PlotOutcome(
            title, None, f"no configuration has both clean and {attack}@{eps} results"
        )
    fig = new_figure(*WIDE_FIGURE)
    ax = fig.subplots()
    _scatter_configs(ax, points, column, _styles(groups))
    trusted = [(g.mean("clean_accuracy"), g.mean(column)) for g in points if not g.masking]
    front = [trusted[i] for i in pareto_front(trusted)]
    if len(front) > 1:  # one unflagged point draws no line: the legend must not name one
        xs, ys = [x for x, _ in front], [y for _, y in front]
        ax.plot(xs, ys, "--", color="gray", label="Pareto frontier", zorder=2)
    ax.set(xlabel="clean accuracy", ylabel=f"robust accuracy ({attack}, eps={eps})")
    ax.set_ylim(*accuracy_limits([g.mean(column) for g in points]))
    color_key, line_key = style_keys(groups)
    ax.set_title(
        f"Clean vs robust accuracy at {attack} eps={eps}\nmarker area ∝ training time, "
        f"colour = {color_key}, marker = {line_key}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    # a legend instead of text beside the markers: good configurations cluster and their
    # labels would overlap; legend markers get one size so the list stays readable
    legend = fig.legend(**LEGEND)
    for handle in legend.legend_handles:
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([40])
    return PlotOutcome(title, save_figure(fig, path, title))


def _scatter_configs(ax, points: Sequence[ConfigGroup], column: str, styles: dict) -> None:
    """One marker per configuration (area ∝ training time, error bars = std over seeds)."""
    times = [g.mean("time_train_s") for g in points]
    longest = max((t for t in times if t), default=None)
    for group, seconds in zip(points, times, strict=True):
        x, y = group.mean("clean_accuracy"), group.mean(column)
        size = 40 + 360 * seconds / longest if seconds and longest else 60
        color, marker = styles[id(group)]["color"], styles[id(group)]["marker"]
        face = "white" if group.masking else color
        ax.scatter(
            [x],
            [y],
            s=size,
            marker=marker,
            facecolors=face,
            edgecolors=color,
            linewidths=1.5,
            alpha=0.8,
            zorder=3,
            label=group.label,
        )
        xerr, yerr = group.stats["clean_accuracy"].std, group.stats[column].std
        if xerr or yerr:
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", color=color, capsize=2)
