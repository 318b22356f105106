"""Detection ROC figures a person can read: one panel per attack, every detector on it.

``plot_detection_roc`` draws one panel per attack with every detector and the max-softmax
baseline on the same axes, from per-example scores: the false-positive rate on a log scale
(detectors differ at low FPR, where they are used) and the TPR axis cut to the range where the
curves differ, with the 95%-TPR operating point marked. ``plot_sweep_roc`` draws one row per
configuration of a sweep. Who wins, in words, is ``robustlab.report.detection_table``.

Per-example scores are kept beside results.json in a safetensors file
(``write_detection_scores`` / ``read_detection_scores``); no pickle. This module needs torch,
so the sweep report imports it only when it draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_curve

from robustlab.detection.metrics import TPR_LEVEL, detection_metrics
from robustlab.detection.storage import ScoreSets
from robustlab.errors import InputError
from robustlab.figures import new_figure, panel_grid, save_figure
from robustlab.report.detection_table import label
from robustlab.report.plots import PlotOutcome

# one side of a ScoreSets pair (attack -> curve -> (clean, adversarial) scores)
ArrayLike = torch.Tensor | np.ndarray | Sequence[float]

MAX_ROC_COLUMNS = 5  # a sweep's ROC grid: 5 panels of 3.6 in = 2160 px wide at 120 dpi

# One colour per detector in every panel; the baseline dashed grey.
STYLES = {
    "mahalanobis": {"color": "C0"},
    "kd_bu": {"color": "C1"},
    "lid": {"color": "C2"},
    "msp": {"color": "0.45", "linestyle": "--"},
}


def roc_points(clean: ArrayLike, adversarial: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve (adversarial = positive)."""
    neg, pos = _array(clean), _array(adversarial)
    fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])
    return fpr, tpr


def plot_detection_roc(scores: ScoreSets, path: str | Path) -> PlotOutcome:
    """ROC curves per attack (one panel each), every detector and MSP on the same axes."""
    title = "Detection ROC"
    attacks = [a for a, curves in scores.items() if any(_drawable(c) for c in curves.values())]
    if not attacks:
        return PlotOutcome(title, None, "no per-example detection scores to draw")
    fig, axes = panel_grid(len(attacks))
    for ax, attack in zip(axes, attacks, strict=True):
        _roc_panel(ax, attack, scores[attack])
    return PlotOutcome(title, save_figure(fig, path, title))


def _roc_panel(ax, attack: str, curves: Mapping[str, tuple[ArrayLike, ArrayLike]]) -> None:
    floor, lows = 1.0, []
    for index, (name, (clean, adv)) in enumerate(curves.items()):
        if not _drawable((clean, adv)):
            continue
        fpr, tpr = roc_points(clean, adv)
        floor = min(floor, 0.5 / len(_array(clean)))  # half a negative: where FPR = 0 sits
        metrics = detection_metrics(clean, adv)
        style = STYLES.get(name, {"color": f"C{3 + index}"})
        ax.step(
            np.maximum(fpr, floor),
            tpr,
            where="post",
            label=f"{label(name)}: AUROC {metrics['auroc']:.3f}, "
            f"TNR@95 {metrics['tnr_at_tpr95']:.2f}",
            **style,
        )
        lows.append(float(np.interp(0.01, fpr, tpr)))
    ax.axhline(TPR_LEVEL, color="black", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    # Zoom: the TPR range the curves span from 1% FPR on, where detectors are compared.
    bottom = max(0.0, np.floor((min(lows) - 0.05) * 20) / 20)
    ax.set(xlim=(floor, 1.0), ylim=(bottom, 1.005), title=attack)
    ax.set(xlabel="false-positive rate (clean flagged, log)", ylabel="true-positive rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")


def _array(values: ArrayLike, allow_empty: bool = False) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not allow_empty and len(array) == 0:
        raise InputError("ROC curves need clean and adversarial scores; got an empty set")
    return array


def _drawable(pair: tuple[ArrayLike, ArrayLike]) -> bool:
    return all(len(_array(side, allow_empty=True)) > 0 for side in pair)


def roc_grid_shape(n_panels: int) -> tuple[int, int]:
    """(rows, columns) of a sweep's ROC panels: about square, at most five columns, so twenty
    panels make a 4 x 5 grid a screen shows whole instead of one column twenty panels tall."""
    cols = min(MAX_ROC_COLUMNS, max(1, math.ceil(math.sqrt(n_panels))))
    return math.ceil(n_panels / cols), cols


def plot_sweep_roc(runs: Mapping[str, ScoreSets], path: str | Path) -> PlotOutcome:
    """ROC curves of a sweep (``runs``: configuration label -> its job's scores): one panel per
    configuration and known-protocol attack, in a grid, every detector and MSP on each."""
    title = "Detection ROC"
    panels = [
        (name, attack, curves)
        for name, scores in runs.items()
        for attack, curves in scores.items()
        if "|" not in attack and any(map(_drawable, curves.values()))
    ]
    if not panels:
        return PlotOutcome(title, None, "no job kept per-example detection scores")
    rows, cols = roc_grid_shape(len(panels))
    fig = new_figure(3.6 * cols, 3.0 * rows)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, (name, attack, curves) in zip(axes, panels, strict=False):
        _roc_panel(ax, attack, curves)
        ax.set_title(f"{name}: {attack}", fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return PlotOutcome(title, save_figure(fig, path, title))
