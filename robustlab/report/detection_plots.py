"""Detection figures and table a person can read: ROC curves per attack, and who wins.

``plot_detection_roc`` draws one panel per attack with every detector and the max-softmax
baseline on the same axes, from per-example scores: the false-positive rate on a log scale
(detectors differ at low FPR, where they are used) and the TPR axis cut to the range where the
curves differ, with the 95%-TPR operating point marked. ``detection_table`` turns detection
results into a compact Markdown table: the winner per attack and protocol, its lead over the
runner-up, and what the adaptive attack does to each detector.

Per-example scores are kept beside results.json in a safetensors file
(``write_detection_scores`` / ``read_detection_scores``); no pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from robustlab.detection.metrics import TPR_LEVEL, detection_metrics
from robustlab.report.plots import DPI, PlotOutcome, _figure, _save

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]
# attack key -> curve name (detector or "msp") -> (clean scores, adversarial scores)
ScoreSets = Mapping[str, Mapping[str, tuple[ArrayLike, ArrayLike]]]

LABELS = {"mahalanobis": "Mahalanobis", "kd_bu": "KD+BU", "lid": "LID", "msp": "MSP baseline"}
# One colour per detector in every panel; the baseline dashed grey.
STYLES = {
    "mahalanobis": {"color": "C0"},
    "kd_bu": {"color": "C1"},
    "lid": {"color": "C2"},
    "msp": {"color": "0.45", "linestyle": "--"},
}


def label(name: str) -> str:
    """Display name of a detector (``kd_bu`` -> ``KD+BU``)."""
    return LABELS.get(name, name)


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
    fig, axes = _figure(len(attacks))
    for ax, attack in zip(axes, attacks, strict=True):
        _roc_panel(ax, attack, scores[attack])
    return _save(fig, Path(path), title)


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


def detection_table(results: Mapping[str, Mapping[str, dict]]) -> str:
    """Markdown: per attack and protocol, the winner by AUROC (detectors and MSP), its lead over
    the runner-up, every AUROC / TNR@95, and the adaptive attack's effect.

    ``results`` maps a detector name to its ``evaluate_detection`` output (attack key ->
    entry with ``auroc``, ``tnr_at_tpr95``, ``baseline_msp`` and, if run, ``adaptive``).
    """
    detectors = list(results)
    keys = list(dict.fromkeys(k for entries in results.values() for k in entries))
    header = ["attack", "winner", "lead (AUROC, TNR@95)"] + [label(d) for d in detectors]
    header += ["MSP", "adaptive attack: AUROC, evasion"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        cells = {d: results[d].get(key, {}) for d in detectors}
        msp = next((c["baseline_msp"] for c in cells.values() if c.get("baseline_msp")), {})
        ranked = sorted(
            ((name, e) for name, e in [*cells.items(), ("msp", msp)] if e.get("auroc") is not None),
            key=lambda item: -item[1]["auroc"],
        )
        row = [key.replace("|", "\\|"), *_winner(ranked)]  # "|" would split the cell
        row += [_metric_cell(cells[d], ranked) for d in detectors]
        row += [_metric_cell(msp, ranked), _adaptive_cell(cells)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _winner(ranked: list[tuple[str, dict]]) -> list[str]:
    if not ranked:
        return ["—", "—"]
    if len(ranked) == 1:
        return [label(ranked[0][0]), "—"]
    (best, top), (second, runner) = ranked[0], ranked[1]
    lead = f"+{top['auroc'] - runner['auroc']:.3f}"
    if top.get("tnr_at_tpr95") is not None and runner.get("tnr_at_tpr95") is not None:
        lead += f", {top['tnr_at_tpr95'] - runner['tnr_at_tpr95']:+.3f}"
    return [label(best), f"{lead} over {label(second)}"]


def _metric_cell(entry: dict, ranked: list[tuple[str, dict]]) -> str:
    if not entry or entry.get("auroc") is None:
        return "—"
    tnr = entry.get("tnr_at_tpr95")
    text = f"{entry['auroc']:.3f} / " + ("—" if tnr is None else f"{tnr:.3f}")
    return f"**{text}**" if ranked and entry is ranked[0][1] else text


def _adaptive_cell(cells: Mapping[str, dict]) -> str:
    parts = []
    for name, entry in cells.items():
        adaptive = entry.get("adaptive") or {}
        if adaptive.get("auroc") is None or entry.get("auroc") is None:
            continue
        evasion = (entry.get("evasion_rate"), adaptive.get("evasion_rate"))
        text = f"{label(name)} {entry['auroc']:.3f}→{adaptive['auroc']:.3f}"
        if None not in evasion:
            text += f", {100 * evasion[0]:.1f}%→{100 * evasion[1]:.1f}%"
        parts.append(text)
    return "; ".join(parts) or "—"


def _array(values: ArrayLike, allow_empty: bool = False) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not allow_empty and len(array) == 0:
        raise ValueError("ROC curves need clean and adversarial scores; got an empty set")
    return array


def _drawable(pair: tuple[ArrayLike, ArrayLike]) -> bool:
    return all(len(_array(side, allow_empty=True)) > 0 for side in pair)


def plot_sweep_roc(runs: Mapping[str, ScoreSets], path: str | Path) -> PlotOutcome:
    """ROC curves of a sweep: one row per configuration (``runs``: label -> its job's scores),
    one panel per known-protocol attack, every detector and MSP on the same axes."""
    title = "Detection ROC"
    rows = {
        name: {a: c for a, c in scores.items() if "|" not in a and any(map(_drawable, c.values()))}
        for name, scores in runs.items()
    }
    rows = {name: attacks for name, attacks in rows.items() if attacks}
    if not rows:
        return PlotOutcome(title, None, "no job kept per-example detection scores")
    cols = max(len(attacks) for attacks in rows.values())
    fig = Figure(figsize=(4.2 * cols, 3.3 * len(rows)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for row, (name, attacks) in zip(axes, rows.items(), strict=True):
        for ax, attack in zip(row, [*attacks, *[None] * (cols - len(attacks))], strict=True):
            if attack is None:
                ax.set_visible(False)
                continue
            _roc_panel(ax, attack, attacks[attack])
            ax.set_title(f"{name}: {attack}", fontsize=9)
    return _save(fig, Path(path), title)
