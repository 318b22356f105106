"""The "Explanations" section of the sweep summary: models and defenses side by side."""

from __future__ import annotations

from collections.abc import Sequence

from robustlab.report.markdown_table import MISSING, markdown_table
from robustlab.report.records import RunRecord
from robustlab.report.tables import ConfigGroup


def _number(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else MISSING


def _stage_shift(stage: dict) -> str:
    """A stage's mean |delta s|, or "constant (dead)" when no block of it depends on its input
    (a bare 0.0 would read as perfect robustness)."""
    dead = len(stage.get("dead_blocks", []))
    if dead and dead == stage.get("blocks"):
        return "constant (dead)"
    value = _number(stage.get("mean_abs_delta"), 4)
    return f"{value} ({dead} dead)" if dead else value


def explanations_section(records: Sequence[RunRecord], groups: Sequence[ConfigGroup]) -> list[str]:
    """Fragility (top-k intersection / Spearman of clean vs adversarial maps), faithfulness
    (deletion AUC on clean inputs, lower is better) and the sanity check (Spearman with a
    re-initialised model, lower is better) per method, and the SE attention shift per stage."""
    by_job = {r.job: r for r in records}
    explained = [(g, g.first_value(by_job, lambda r: r.explanations)) for g in groups]
    explained = [(g, e) for g, e in explained if e]
    lines = ["## Explanations", ""]
    if not explained:
        return lines + ["No job ran the explain stage (explain=default).", ""]
    methods = list(dict.fromkeys(m for _, e in explained for m in e.get("methods", [])))
    fragility, quality = [], []
    for group, e in explained:
        frag = e.get("fragility", {})
        cells = [
            f"{_number(frag.get(m, {}).get('topk_intersection'))} / "
            f"{_number(frag.get(m, {}).get('spearman'))}"
            for m in methods
        ]
        stages = e.get("se_attention", {}).get("stages", {})
        shift = " / ".join(_stage_shift(s) for s in stages.values())
        fragility.append([group.label, *cells, shift or MISSING])
        faith, sanity = e.get("faithfulness", {}), e.get("sanity", {})
        quality.append(
            [
                group.label,
                *(
                    f"{_number(faith.get(m, {}).get('deletion_auc_clean'))} / "
                    f"{_number(sanity.get(m))}"
                    for m in [*methods, "random"]
                ),
            ]
        )
    lines += [
        "Fragility: top-k intersection / Spearman rank correlation between the maps of a clean "
        "input and of its adversarial example (1 = unchanged); SE: mean absolute change of the "
        "excitation per stage; a dead block (constant excitation) is counted, and a stage of dead "
        'blocks reads "constant (dead)".',
        "",
    ]
    lines += markdown_table(
        ["configuration", *methods, "SE shift per stage (mean abs Δs)"], fragility
    )
    lines += [
        "Faithfulness and sanity: deletion AUC on clean inputs (lower = more faithful) / "
        "Spearman with the maps of a re-initialised model (near 1 = the method ignores the "
        "weights).",
        "",
    ]
    return lines + markdown_table(["configuration", *methods, "random ranking"], quality)
