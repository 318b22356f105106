"""The detection table of a report: per attack and protocol, who wins and by how much.

``detection_table`` turns detection results into a compact Markdown table: the winner per
attack and protocol (detectors and the max-softmax baseline), its lead over the runner-up,
every AUROC / TNR@95, and what the adaptive attack does to each detector. Plain dictionaries
in, Markdown out: no torch, no matplotlib.

An AUROC is shown with its 95% DeLong interval when results.json has one (``auroc_ci``), to
two decimals unless the interval is narrower than that, and flagged when below chance; equal
AUROCs are a tie, not a win. ``job_detection_table`` is the table ``robustlab-detect`` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from robustlab.report.markdown_table import markdown_table

CHANCE = 0.5  # the AUROC of a score that ignores its input (the report imports no torch)
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
        cells, msp, ranked = ranked_detectors(results, key)
        row = [key, *_winner(ranked)]
        row += [_metric_cell(cells[d], ranked) for d in detectors]
        row += [_metric_cell(msp, ranked), _adaptive_cell(cells)]
        rows.append(row)
    return "\n".join(markdown_table(header, rows))


def ranked_detectors(
    results: Mapping[str, Mapping[str, dict]], key: str
) -> tuple[dict[str, dict], dict, list[tuple[str, dict]]]:
    """For one attack key: each detector's entry, the MSP baseline's, and every one with an
    AUROC, best first."""
    cells = {d: results[d].get(key, {}) for d in results}
    msp = next((c["baseline_msp"] for c in cells.values() if c.get("baseline_msp")), {})
    ranked = sorted(
        ((name, e) for name, e in [*cells.items(), ("msp", msp)] if e.get("auroc") is not None),
        key=lambda item: -item[1]["auroc"],
    )
    return cells, msp, ranked


def winners_by_attack(runs: Sequence[Mapping[str, Mapping[str, dict]]]) -> list[str]:
    """One sentence per attack over a sweep's configurations (``runs``: each one's detector
    results): which detector wins by AUROC in how many, and the mean AUROC of each."""
    tally: dict[str, dict[str, list]] = {}
    for results in runs:
        for key in dict.fromkeys(k for entries in results.values() for k in entries):
            _, _, ranked = ranked_detectors(results, key)
            if ranked:
                entry = tally.setdefault(key, {"wins": [], "auroc": []})
                entry["wins"].append(ranked[0][0])
                entry["auroc"] += [(name, e["auroc"]) for name, e in ranked]
    lines = []
    for key, entry in tally.items():
        wins = Counter(entry["wins"])
        best, count = wins.most_common(1)[0]
        means = {
            name: sum(a for n, a in entry["auroc"] if n == name)
            / sum(1 for n, _ in entry["auroc"] if n == name)
            for name in dict.fromkeys(n for n, _ in entry["auroc"])
        }
        ranked_means = ", ".join(
            f"{label(n)} {m:.3f}" for n, m in sorted(means.items(), key=lambda item: -item[1])
        )
        lines.append(
            f"- {key}: **{label(best)}** wins in {count} of {len(entry['wins'])} "
            f"configuration(s) (mean AUROC {ranked_means})"
        )
    return lines


def _winner(ranked: list[tuple[str, dict]]) -> list[str]:
    if not ranked:
        return ["—", "—"]
    if len(ranked) == 1:
        return [label(ranked[0][0]), "—"]
    tied = [name for name, entry in ranked if entry["auroc"] == ranked[0][1]["auroc"]]
    if len(tied) > 1:  # equal AUROCs: no detector wins
        return ["tie: " + ", ".join(map(label, tied)), "—"]
    (best, top), (second, runner) = ranked[0], ranked[1]
    lead = f"+{top['auroc'] - runner['auroc']:.2f}"
    if top.get("tnr_at_tpr95") is not None and runner.get("tnr_at_tpr95") is not None:
        lead += f", {top['tnr_at_tpr95'] - runner['tnr_at_tpr95']:+.2f}"
    return [label(best), f"{lead} over {label(second)}"]


def _metric_cell(entry: dict, ranked: list[tuple[str, dict]]) -> str:
    if not entry or entry.get("auroc") is None:
        return "—"
    tnr = entry.get("tnr_at_tpr95")
    text = f"{auroc_text(entry)} / " + ("—" if tnr is None else f"{tnr:.2f}")
    leads = ranked and entry is ranked[0][1] and _winner(ranked)[0].startswith(label(ranked[0][0]))
    return f"**{text}**" if leads else text


def auroc_text(entry: Mapping[str, object]) -> str:
    """``0.86 [0.74, 0.99]`` (the 95% interval, when known), three decimals only when the
    interval is that narrow; ``0.32 (below chance)`` for an inverted score."""
    auroc, interval = entry["auroc"], entry.get("auroc_ci")
    narrow = interval is not None and interval[1] - interval[0] < 0.01
    digits = 3 if narrow else 2
    text = f"{auroc:.{digits}f}"
    if interval is not None:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text + (" (below chance)" if auroc < CHANCE else "")


def job_detection_table(results: Mapping[str, object], *, detector: str = "detector") -> str:
    """The detection summary of one job's results.json object: per detector and entry, the
    AUROC with its interval, TNR@95, the clean and adversarial examples it rests on.

    Args:
        results: A job's results.json object.
        detector: The name of the detector whose entries are under ``"detection"`` (used when
            there is no ``"detectors"`` key, i.e. one detector ran).
    """
    tables = results.get("detectors") or {detector: results.get("detection") or {}}
    header = ["detector", "attack", "AUROC [95% CI]", "TNR@95", "clean / adv. examples"]
    rows = []
    for name, entries in tables.items():
        for key, entry in entries.items():
            if entry.get("auroc") is None:
                rows.append([label(name), _entry_name(key), "—", "—", _counts(entry)])
                continue
            tnr = entry.get("tnr_at_tpr95")
            tnr_text = "—" if tnr is None else f"{tnr:.2f}"
            rows.append(
                [label(name), _entry_name(key), auroc_text(entry), tnr_text, _counts(entry)]
            )
    return "\n".join(markdown_table(header, rows)).rstrip()


def _entry_name(key: str) -> str:
    """``pgd@0.1|unseen(fgsm@0.1)`` as ``pgd@0.1, unseen (fitted on fgsm@0.1)``."""
    attack, _, fitted = key.partition("|unseen(")
    return f"{attack}, unseen (fitted on {fitted.removesuffix(')')})" if fitted else attack


def _counts(entry: Mapping[str, object]) -> str:
    clean, adversarial = entry.get("n_clean"), entry.get("n_adversarial")
    return "—" if clean is None or adversarial is None else f"{clean} / {adversarial}"


def _adaptive_cell(cells: Mapping[str, dict]) -> str:
    parts = []
    for name, entry in cells.items():
        adaptive = entry.get("adaptive") or {}
        if adaptive.get("auroc") is None or entry.get("auroc") is None:
            continue
        evasion = (entry.get("evasion_rate"), adaptive.get("evasion_rate"))
        text = f"{label(name)} {entry['auroc']:.2f}→{adaptive['auroc']:.2f}"
        if None not in evasion:
            text += f", {100 * evasion[0]:.1f}%→{100 * evasion[1]:.1f}%"
        parts.append(text)
    return "; ".join(parts) or "—"
