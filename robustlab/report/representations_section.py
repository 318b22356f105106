"""The "Inside the representations" section of the sweep summary.

Two measured answers to claims of the background documents, each only when the sweep holds
the data: how much of the input each layer keeps (feature inversion, per stage), and what the
SE reduction ratio r costs in parameters beside the SE paper's Eq. 5, and buys in accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustlab.report.markdown_table import MISSING, format_percent, markdown_table
from robustlab.report.norms import WORST_CASES
from robustlab.report.records import RunRecord
from robustlab.report.tables import ConfigGroup, eps_order, robust_column

STANDARD = "none"  # the defense a robust model is compared with


def _inversion(record: RunRecord) -> dict:
    return record.explanations.get("inversion", {}).get("layers", {})


def _grows_with_depth(layers: dict) -> bool:
    stages = [v["pixel_error"] for k, v in layers.items() if k.startswith("stage")]
    return all(a <= b for a, b in zip(stages, stages[1:], strict=False))


def _last_stage(layers: dict) -> str | None:
    stages = [k for k in layers if k.startswith("stage")]
    return stages[-1] if stages else None


def _robust_comparison(inverted: list[tuple[ConfigGroup, dict]]) -> list[str]:
    """Per dataset and model: the last stage's pixel error, standard against each defense."""
    lines = []
    standard = {(g.dataset, g.model): lay for g, lay in inverted if g.defense == STANDARD}
    for group, layers in inverted:
        base = standard.get((group.dataset, group.model))
        last = _last_stage(layers)
        if group.defense == STANDARD or base is None or last is None or last not in base:
            continue
        ours, theirs = layers[last]["pixel_error"], base[last]["pixel_error"]
        verdict = "closer to the original" if ours < theirs else "not closer"
        lines.append(
            f"- {group.label}: pixel error at {last} {ours:.3f} against {theirs:.3f} "
            f"for {group.model} / {STANDARD}: {verdict}"
        )
    return lines


def inversion_lines(records: Sequence[RunRecord], groups: Sequence[ConfigGroup]) -> list[str]:
    """Median pixel / feature errors of each layer's inversion, and the two findings."""
    by_job = {r.job: r for r in records}
    inverted = [(g, g.first_value(by_job, _inversion)) for g in groups]
    inverted = [(g, layers) for g, layers in inverted if layers]
    if not inverted:
        return []
    keys = list(dict.fromkeys(k for _, layers in inverted for k in layers))
    rows = [[g.label, *(_cell(layers.get(k)) for k in keys)] for g, layers in inverted]
    growing = [g.label for g, layers in inverted if _grows_with_depth(layers)]
    lines = ["### Feature inversion", ""]
    lines += [
        "Median RMS pixel error of the reconstruction / median relative feature error, per "
        "layer inverted (the same images for every configuration).",
        "",
    ]
    lines += markdown_table(["configuration", *keys], rows)
    lines += [
        f"- Pixel error grows stage by stage (early layers keep more of the input) in "
        f"{len(growing)} of {len(inverted)} configurations."
    ]
    return lines + _robust_comparison(inverted) + [""]


def _cell(errors: dict | None) -> str:
    if not errors:
        return MISSING
    return f"{errors['pixel_error']:.3f} / {errors['feature_error']:.3f}"


def se_overhead_lines(records: Sequence[RunRecord], groups: Sequence[ConfigGroup]) -> list[str]:
    """Per configuration with SE blocks: r, exact extra parameters, Eq. 5, accuracies."""
    by_job = {r.job: r for r in records}
    rows, eps_keys = [], set()
    overheads = [(g, g.first_value(by_job, lambda r: r.se_overhead)) for g in groups]
    overheads = [(g, o) for g, o in overheads if o]
    if not overheads:
        return []
    worst = WORST_CASES["Linf"]
    for group, _ in overheads:
        eps_keys |= set(group.robust_eps.get(worst, []))
    eps = sorted(eps_keys, key=eps_order)
    # one model/defense's reduction ratios in ascending r, not in label (string) order
    overheads.sort(key=lambda pair: (pair[0].model, pair[0].defense, pair[1].get("reduction") or 0))
    for group, overhead in overheads:
        rows.append(
            [
                group.label,
                overhead.get("reduction", MISSING),
                overhead["exact_params"],
                f"{overhead['eq5_params']:.0f}",
                format_percent(group.stats.get("clean_accuracy")),
                " / ".join(format_percent(group.stats.get(robust_column(worst, e))) for e in eps),
            ]
        )
    header = ["configuration", "r", "SE params (exact)", "Eq. 5", "clean %"]
    header.append(f"worst case % at eps {' / '.join(eps)}" if eps else "worst case %")
    lines = ["### SE reduction ratio", ""]
    lines += [
        "Exact SE parameters (two linear layers with biases, hidden width max(1, C // r)) "
        "beside the SE paper's Eq. 5 estimate (2/r) Σ N_s C_s².",
        "",
    ]
    return lines + markdown_table(header, rows)


def representations_section(
    records: Sequence[RunRecord], groups: Sequence[ConfigGroup]
) -> list[str]:
    """The section, or nothing when no job inverted features or had SE blocks."""
    body = inversion_lines(records, groups) + se_overhead_lines(records, groups)
    return ["## Inside the representations", "", *body] if body else []
