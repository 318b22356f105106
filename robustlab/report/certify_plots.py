"""The sweep's certified-vs-empirical figure: lower bounds beside upper bounds, per config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from robustlab.report.plots import PlotOutcome
from robustlab.report.records import RunRecord
from robustlab.report.tables import variant_of

TITLE = "Certified vs empirical robust accuracy (L2)"
CURVE_NAMES = {
    "smoothing": "certified (randomized smoothing)",
    "lipschitz": "certified (Lipschitz margin)",
    "min_norm/L2": "empirical (min-norm L2 attack)",
}


def certified_series(records: Sequence[RunRecord]) -> dict[str, dict[str, dict[float, float]]]:
    """Per model/defense (first seed of each configuration): its L2 curves by kind."""
    series: dict[str, dict[str, dict[float, float]]] = {}
    for record in records:
        if not record.ok or not record.certified_curves:
            continue
        label = f"{record.model} / {record.defense}"
        variant = variant_of(record)
        label = f"{label} [{variant}]" if variant and "defense=" in variant else label
        curves = {
            CURVE_NAMES[name]: {float(r): acc for r, acc in curve.items()}
            for name, curve in record.certified_curves.items()
            if name in CURVE_NAMES
        }
        if curves:
            series.setdefault(label, curves)
    return series


def plot_certified(records: Sequence[RunRecord], path: str | Path) -> PlotOutcome:
    """Certified accuracy vs L2 radius next to the empirical (attack) accuracy, the gap shaded."""
    from robustlab.certify.plots import plot_certified_vs_empirical  # matplotlib on demand

    series = certified_series(records)
    if not series:
        return PlotOutcome(TITLE, None, "no job ran the certify stage (certify=default)")
    return PlotOutcome(TITLE, plot_certified_vs_empirical(series, path, title=TITLE))
