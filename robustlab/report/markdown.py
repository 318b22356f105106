"""The Markdown summary of a sweep: what a person reads first."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from robustlab.report.detection_table import detection_table, winners_by_attack
from robustlab.report.explain_section import explanations_section
from robustlab.report.markdown_table import MISSING, format_percent, markdown_table
from robustlab.report.norms import WORST_CASES, budget_axis, budget_header, curves_by_norm
from robustlab.report.plots import PlotOutcome
from robustlab.report.records import RunRecord
from robustlab.report.representations_section import representations_section
from robustlab.report.tables import (
    MASKING_MARK,
    ConfigGroup,
    eps_order,
    robust_column,
    sweep_norms,
)

MAX_ERROR_CHARS = 300
DETECTION_SKIP = "detection ("  # how the detection stage's skip warnings begin


@dataclass
class SummaryContext:
    """Everything the summary links to or mentions besides the records themselves."""

    sweep_dir: Path
    out_dir: Path
    main_attack: str = WORST_CASES["Linf"]
    tables: dict[str, Path] = field(default_factory=dict)  # description -> CSV path
    plots: list[PlotOutcome] = field(default_factory=list)
    sweep_overrides: list[str] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)  # the Pareto section of a search sweep


def _who(record: RunRecord) -> str:
    seed = "?" if record.seed is None else record.seed
    return f"{record.model or '?'} / {record.defense or '?'}, seed {seed}"


def _header(records: Sequence[RunRecord], ctx: SummaryContext) -> list[str]:
    ok = sum(r.ok for r in records)
    lines = [f"# Sweep report: {ctx.sweep_dir.name or ctx.sweep_dir}", ""]
    lines += [f"- Sweep folder: `{ctx.sweep_dir}`"]
    lines += [f"- Jobs: {len(records)} ({ok} ok, {len(records) - ok} failed)"]
    if ctx.sweep_overrides:
        lines += ["- Sweep overrides: " + " ".join(f"`{o}`" for o in ctx.sweep_overrides)]
    datasets = sorted({r.dataset for r in records if r.dataset})
    if datasets:
        lines += [f"- Data sets: {', '.join(datasets)}"]
    return lines + ["- Accuracies are in %; `a ± b` is mean ± sample std over seeds.", ""]


def _accuracy_tables(groups: Sequence[ConfigGroup], main_attack: str) -> list[str]:
    """One group of tables per threat model (Linf first, led by ``main_attack``), one table per
    attack in it."""
    if not groups:
        return ["## Accuracy", "", "No job finished, so there is nothing to compare.", ""]
    lines = ["## Accuracy", ""]
    attacks = [attack for g in groups for attack in g.robust_eps]
    by_norm = curves_by_norm(attacks, sweep_norms(groups), lead=main_attack)
    if not by_norm:
        return lines + ["### Clean accuracy (no attack results)", ""] + _attack_table(groups)
    for norm, names in by_norm.items():
        budget = f" (budget: {budget_axis(norm)})" if norm == "L0" else ""
        lines += [f"### {norm} threat model{budget}", ""]
        for attack in names:
            title = f"#### Under {attack}"
            if attack == WORST_CASES["Linf"]:
                title += " (per example, the strongest of every attack the job ran)"
            lines += [title, ""] + _attack_table(groups, attack, norm)
    return lines


def _attack_table(
    groups: Sequence[ConfigGroup], attack: str | None = None, norm: str = "Linf"
) -> list[str]:
    """Clean accuracy and the accuracy at every budget of one attack, one row per group."""
    eps_keys = sorted({e for g in groups for e in g.robust_eps.get(attack, [])}, key=eps_order)
    header = ["dataset", "model", "defense", "variant", "seeds", "clean"]
    header += [budget_header(attack, norm, e) for e in eps_keys]
    rows = []
    for g in groups:
        defense = f"{g.defense} {MASKING_MARK}" if g.masking else g.defense
        cells = [g.dataset, g.model, defense, g.distinct or MISSING, len(g.jobs)]
        cells.append(format_percent(g.stats.get("clean_accuracy")))
        cells += [format_percent(g.stats.get(robust_column(attack, e))) for e in eps_keys]
        rows.append(cells)
    return markdown_table(header, rows)


def best_per_eps(
    groups: Sequence[ConfigGroup], attack: str
) -> list[tuple[str, str, list[ConfigGroup]]]:
    """(dataset, eps, best groups): the highest robust accuracy, every configuration that
    reaches it (a tie names them all; the clean accuracy does not break it).

    A configuration with a gradient-masking warning is never named best: its robust accuracy
    may only say that the attacks failed, not that the model resists them.
    """
    best = []
    for dataset in sorted({g.dataset for g in groups}):
        mine = [g for g in groups if g.dataset == dataset and not g.masking]
        eps_keys = sorted({e for g in mine for e in g.robust_eps.get(attack, [])}, key=eps_order)
        for eps in eps_keys:
            column = robust_column(attack, eps)
            candidates = [g for g in mine if g.mean(column) is not None]
            if candidates:
                top = max(g.mean(column) for g in candidates)
                best.append((dataset, eps, [g for g in candidates if g.mean(column) == top]))
    return best


def _best_label(tied: Sequence[ConfigGroup], column: str) -> str:
    """The winner's label; ``tie: a, b`` when several reach the top, and no winner at all when
    the top is 0 (every configuration broken)."""
    if tied[0].mean(column) == 0.0:
        return f"none: all {len(tied)} at 0" if len(tied) > 1 else f"none: {tied[0].label} at 0"
    if len(tied) > 1:
        return "tie: " + ", ".join(g.label for g in tied)
    return tied[0].label


def _flagged_above(groups: Sequence[ConfigGroup], best: ConfigGroup, column: str) -> str:
    """Masking-flagged configurations of the same data set that score higher than ``best``."""
    above = [
        g
        for g in groups
        if g.masking and g.dataset == best.dataset and (g.mean(column) or 0) > best.mean(column)
    ]
    return ", ".join(f"{g.label} {format_percent(g.stats[column])}" for g in above) or MISSING


def _best_section(groups: Sequence[ConfigGroup], attack: str) -> list[str]:
    lines = [f"## Best configuration per eps ({attack})", ""]
    best = best_per_eps(groups, attack)
    if not best:
        return lines + [f"No {attack} results in any unflagged finished job.", ""]
    rows = [
        (
            dataset,
            eps,
            _best_label(tied, robust_column(attack, eps)),
            format_percent(tied[0].stats.get(robust_column(attack, eps))),
            MISSING if len(tied) > 1 else format_percent(tied[0].stats.get("clean_accuracy")),
            _flagged_above(groups, tied[0], robust_column(attack, eps)),
        )
        for dataset, eps, tied in best
    ]
    header = ["dataset", "eps", "best", f"{attack} accuracy", "clean", "higher but flagged"]
    lines += [
        f"Configurations marked {MASKING_MARK} carry a gradient-masking warning and are not "
        "ranked: a high robust accuracy there may only mean that the attacks failed.",
        "",
    ]
    return lines + markdown_table(header, rows)


def _detection_section(records: Sequence[RunRecord], groups: Sequence[ConfigGroup]) -> list[str]:
    """Which detector wins per attack over the sweep; then per configuration (its first job)
    the table of who wins by how much and what the adaptive attack does to each, or why the
    configuration has no detection (and so no ROC panel)."""
    by_job = {r.job: r for r in records}
    lines, runs, missing = ["## Detection", ""], [], []
    for group in groups:
        record = next((by_job[j] for j in group.jobs if by_job[j].detectors), None)
        if record is None:
            missing.append(group)
            continue
        runs.append(record.detectors)
        lines += [f"### {group.label} (job `{record.job}`)", "", detection_table(record.detectors)]
        lines += [f"- {w}" for w in record.warnings if w.startswith(DETECTION_SKIP)] + [""]
    if not runs:
        return lines + ["No job ran a detector.", ""]
    verdicts = ["Winner per attack (by AUROC, the MSP baseline included):", ""]
    verdicts += winners_by_attack(runs) + [""]
    for group in missing:
        first = by_job[group.jobs[0]]
        skips = [w for w in first.warnings if w.startswith(DETECTION_SKIP)]
        reason = "; ".join(skips) or "the job ran no detector (detector=none)"
        lines += [
            f"### {group.label} (job `{first.job}`)",
            "",
            f"No detection, no ROC panel: {reason}",
            "",
        ]
    return lines[:2] + verdicts + lines[2:]


def _warnings_section(records: Sequence[RunRecord]) -> list[str]:
    flagged = [r for r in records if r.warnings]
    if not flagged:
        return ["## Warnings", "", "No job reported a warning.", ""]
    kinds: dict[str, int] = {}
    for record in flagged:
        for kind in {w.split(":", 1)[0].strip() for w in record.warnings}:
            kinds[kind] = kinds.get(kind, 0) + 1
    lines = ["## Warnings", ""]
    lines += [f"- {kind}: {n} job{'s' if n > 1 else ''}" for kind, n in sorted(kinds.items())]
    for record in flagged:
        lines += ["", f"### Job `{record.job}` ({_who(record)})", ""]
        lines += [f"- {w}" for w in record.warnings]
    return lines + [""]


def _failures_section(records: Sequence[RunRecord]) -> list[str]:
    failed = [r for r in records if not r.ok]
    if not failed:
        return ["## Failed jobs", "", "None.", ""]
    rows = []
    for record in failed:
        error = (record.error or "unknown error").strip()
        error = error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"
        rows.append((f"`{record.job}`", _who(record), " ".join(record.overrides), error))
    return ["## Failed jobs", ""] + markdown_table(["job", "config", "overrides", "error"], rows)


def _files_section(ctx: SummaryContext, summary_dir: Path) -> list[str]:
    def link(path: Path) -> str:
        return Path(os.path.relpath(path, summary_dir)).as_posix()

    lines = ["## Files", ""]
    lines += [f"- {what}: [{path.name}]({link(path)})" for what, path in ctx.tables.items()]
    lines += [f"- {p.title}: skipped, {p.note}" for p in ctx.plots if p.path is None]
    for plot in ctx.plots:
        if plot.path is not None:
            lines += ["", f"### {plot.title}", "", f"![{plot.title}]({link(plot.path)})"]
    return lines + [""]


def render_summary(
    records: Sequence[RunRecord], groups: Sequence[ConfigGroup], ctx: SummaryContext
) -> str:
    """The whole Markdown summary: header, accuracy, best per eps, warnings, failures, files."""
    lines = _header(records, ctx)
    lines += _accuracy_tables(groups, ctx.main_attack)
    lines += _best_section(groups, ctx.main_attack)
    lines += ctx.pareto
    lines += _detection_section(records, groups)
    lines += explanations_section(records, groups)
    lines += representations_section(records, groups)
    lines += _warnings_section(records)
    lines += _failures_section(records)
    lines += _files_section(ctx, ctx.out_dir)
    return "\n".join(lines).rstrip() + "\n"
