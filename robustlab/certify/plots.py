"""Certified accuracy vs L2 radius next to the empirical robust accuracy, per model/defense.

Made and saved through [`robustlab.figures`][robustlab.figures] (the Agg canvas, one DPI, an atomic
save, so a reader never sees half a figure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from robustlab.errors import InputError
from robustlab.figures import new_figure, save_figure

Curve = Mapping[float, float]


def _style(kind: str) -> dict:
    # certified curves dashed, empirical (attack) curves solid: lower vs upper bound at a glance
    return {"linestyle": "--" if kind.startswith("certified") else "-", "linewidth": 1.8}


def plot_certified_vs_empirical(
    series: Mapping[str, Mapping[str, Curve]],
    path: str | Path,
    title: str = "certified (lower bound) vs empirical (upper bound) accuracy",
    xlabel: str = "L2 radius",
) -> Path:
    """One panel per model/defense (the keys of ``series``); in each, one line per curve
    (``{"certified (smoothing)": {0.0: 0.97, 0.25: 0.9, ...}, "empirical (min-norm L2)": ...}``).
    Curves whose name starts with "certified" are dashed; the gap between the highest certified
    and the lowest empirical curve is shaded. Returns the PNG path."""
    if not series:
        raise InputError("nothing to plot: series is empty")
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = new_figure(4.2 * cols, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (label, curves) in zip(axes, series.items(), strict=False):
        for index, (kind, curve) in enumerate(curves.items()):
            xs = sorted(curve)
            ax.plot(xs, [curve[x] for x in xs], color=f"C{index}", label=kind, **_style(kind))
        _shade_gap(ax, curves)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path, title)


def _shade_gap(ax, curves: Mapping[str, Curve]) -> None:
    certified = [c for k, c in curves.items() if k.startswith("certified")]
    empirical = [c for k, c in curves.items() if not k.startswith("certified")]
    if not certified or not empirical:
        return
    xs = sorted(set.intersection(*(set(c) for c in certified + empirical)))
    low = [max(c[x] for c in certified) for x in xs]
    high = [min(c[x] for c in empirical) for x in xs]
    ax.fill_between(xs, low, high, color="0.6", alpha=0.2, linewidth=0, label="_gap")
