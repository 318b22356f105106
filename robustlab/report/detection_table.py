"""The detection table of a report: per attack and protocol, who wins and by how much.

``detection_table`` turns detection results into a compact Markdown table: the winner per
attack and protocol (detectors and the max-softmax baseline), its lead over the runner-up,
every AUROC / TNR@95, and what the adaptive attack does to each detector. Plain dictionaries
in, Markdown out: no torch, no matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping

from robustlab.report.markdown_table import markdown_table

LABELS = {"mahalanobis": "Mahalanobis", "kd_bu": "KD+BU", "lid": "LID", "msp": "MSP baseline"}


def label(name: str) -> str:
    """Display name of a detector (``kd_bu`` -> ``KD+BU``)."""
    return LABELS.get(name, name)


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
    rows = []
    for key in keys:
        cells = {d: results[d].get(key, {}) for d in detectors}
        msp = next((c["baseline_msp"] for c in cells.values() if c.get("baseline_msp")), {})
        ranked = sorted(
            ((name, e) for name, e in [*cells.items(), ("msp", msp)] if e.get("auroc") is not None),
            key=lambda item: -item[1]["auroc"],
        )
        row = [key, *_winner(ranked)]
        row += [_metric_cell(cells[d], ranked) for d in detectors]
        row += [_metric_cell(msp, ranked), _adaptive_cell(cells)]
        rows.append(row)
    return "\n".join(markdown_table(header, rows))


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
