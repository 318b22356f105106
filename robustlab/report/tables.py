"""Tidy tables of a sweep: one row per job, and one row per configuration across seeds."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustlab.fileio import atomic_path
from robustlab.report.norms import WORST_CASES
from robustlab.report.records import IDENTITY_OVERRIDES, RunRecord, parse_override
from robustlab.tracking.results import MASKING_PREFIX

JOB_COLUMNS = ["job", "status", "dataset", "model", "defense", "seed", "variant", "params"]
TAIL_COLUMNS = ["n_warnings", "error"]
DETECTION_METRICS = ("auroc", "tnr_at_tpr95", "detection_accuracy", "aupr")
# Overrides that do not define a configuration: seeds are averaged over, the rest is plumbing.
NON_CONFIG_KEYS = {"seed", "device", "logger"}
NON_CONFIG_PREFIXES = ("hydra.", "logger.", "paths.")


def robust_column(attack: str, eps: str) -> str:
    """Column of robust accuracy under ``attack`` at ``eps``, e.g. ``robust_pgd@0.1``."""
    return f"robust_{attack}@{eps}"


def detection_column(metric: str, key: str, baseline: str | None = None) -> str:
    """Column of a detection metric, e.g. ``auroc_pgd@0.1`` or ``auroc_msp_pgd@0.1``."""
    return f"{metric}_{baseline}_{key}" if baseline else f"{metric}_{key}"


def eps_order(eps: str) -> tuple[float, str]:
    """Sort key for eps keys: numerically, non-numeric ones ("inf", names) last."""
    try:
        return float(eps), ""
    except ValueError:
        return math.inf, eps


def variant_of(record: RunRecord) -> str:
    """The overrides that distinguish a configuration beyond dataset/model/defense and seed."""
    return " ".join(variant_parts(record))


def variant_parts(record: RunRecord) -> tuple[str, ...]:
    """``variant_of`` as a sorted tuple of overrides (values may contain spaces)."""
    parts = []
    for override in record.overrides:
        key, _ = parse_override(override)
        if key in IDENTITY_OVERRIDES or key in NON_CONFIG_KEYS:
            continue
        if key.startswith(NON_CONFIG_PREFIXES):
            continue
        parts.append(override.lstrip("+~"))
    return tuple(sorted(parts))


def job_variants(records: Sequence[RunRecord]) -> dict[str, str]:
    """Per job, its variant less the overrides every job of the sweep shares: what tells the
    jobs apart, without the sweep-wide ``experiment=tiny threads=1``."""
    parts = {record.job: set(variant_parts(record)) for record in records}
    # a job that left no overrides behind (no results, no .hydra) says nothing about them
    known = [parts[record.job] for record in records if record.overrides]
    shared = set.intersection(*known) if known else set()
    return {job: " ".join(sorted(mine - shared)) for job, mine in parts.items()}


def _detection_cells(record: RunRecord) -> dict[str, float]:
    cells: dict[str, float] = {}
    for key, metrics in record.detection.items():
        for name, value in metrics.items():
            if isinstance(value, dict):
                baseline = name.removeprefix("baseline_")
                for sub_name, sub_value in value.items():
                    cells[detection_column(sub_name, key, baseline)] = sub_value
            else:
                cells[detection_column(name, key)] = value
    return cells


def metric_cells(record: RunRecord) -> dict[str, float]:
    """All numeric results of one job, keyed by table column."""
    cells: dict[str, float] = {}
    if record.clean_accuracy is not None:
        cells["clean_accuracy"] = record.clean_accuracy
    for attack, curve in record.robust_accuracy.items():
        for eps, accuracy in sorted(curve.items(), key=lambda item: eps_order(item[0])):
            cells[robust_column(attack, eps)] = accuracy
    cells.update(_detection_cells(record))
    cells.update({f"time_{stage}_s": seconds for stage, seconds in record.timing_s.items()})
    cells.update({f"cost_{name}": value for name, value in record.training_cost.items()})
    return cells


def _metric_rank(column: str) -> tuple:
    """Order within the metric block: clean, robust, detection, time, cost."""
    for rank, prefix in enumerate(("clean_accuracy", "robust_")):
        if column.startswith(prefix):
            return (rank,)
    if column.startswith(("time_", "cost_")):
        return (4 if column.startswith("cost_") else 3,)
    metric = next((m for m in DETECTION_METRICS if column.startswith(m + "_")), None)
    return (2, DETECTION_METRICS.index(metric) if metric else len(DETECTION_METRICS))


def metric_columns(records: Iterable[RunRecord]) -> list[str]:
    """Metric columns present in any record, grouped by kind, each kind in first-seen order."""
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(metric_cells(record)))
    # sorted() is stable, so first-seen order survives inside each kind.
    return sorted(seen, key=_metric_rank)


def build_table(records: Sequence[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """One tidy row per job (failed jobs included, with their error) and the column order."""
    metrics = metric_columns(records)
    columns = JOB_COLUMNS + metrics + TAIL_COLUMNS
    rows, variants = [], job_variants(records)
    for record in records:
        row: dict[str, Any] = {name: getattr(record, name, None) for name in JOB_COLUMNS}
        row["variant"] = variants[record.job]
        row.update(metric_cells(record))
        row["n_warnings"], row["error"] = len(record.warnings), record.error
        rows.append(row)
    return columns, rows


# how a configuration flagged by a masking warning (MASKING_PREFIX) is marked
MASKING_MARK = "(masking?)"


def lead_attack(groups: Sequence[ConfigGroup], requested: str | None = None) -> str:
    """The attack that ranks configurations: ``requested``, else the per-example worst case
    when any job has it, else PGD (files written before the worst-case suite existed)."""
    if requested is not None:
        return requested
    worst_case = WORST_CASES["Linf"]
    return worst_case if any(worst_case in g.robust_eps for g in groups) else "pgd"


@dataclass
class Stat:
    """Mean, sample standard deviation (None for a single value) and count of one metric."""

    mean: float
    std: float | None
    n: int


@dataclass
class ConfigGroup:
    """The ok jobs of one configuration (dataset, model, defense, variant) across seeds."""

    dataset: str
    model: str
    defense: str
    variant: str
    jobs: list[str] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)
    stats: dict[str, Stat] = field(default_factory=dict)
    robust_eps: dict[str, list[str]] = field(default_factory=dict)
    norms: dict[str, str] = field(default_factory=dict)  # attack -> the norm of its curve
    detection_keys: list[str] = field(default_factory=list)
    distinct: str = ""  # the part of ``variant`` not shared by every group of the sweep
    show_dataset: bool = False  # the sweep spans several data sets: labels name theirs
    warnings: list[str] = field(default_factory=list)  # every distinct warning of its jobs

    @property
    def masking(self) -> bool:
        """Whether any job of the configuration carries a gradient-masking warning."""
        return any(w.startswith(MASKING_PREFIX) for w in self.warnings)

    @property
    def label(self) -> str:
        """Short name for legends and tables: ``model / defense [distinct overrides]`` (prefixed
        ``dataset:`` in a sweep over data sets), marked ``(masking?)`` when a job of it carries
        a gradient-masking warning."""
        text = f"{self.model} / {self.defense}"
        text = f"{self.dataset}: {text}" if self.show_dataset else text
        text = f"{text} [{self.distinct}]" if self.distinct else text
        return f"{text} {MASKING_MARK}" if self.masking else text

    def mean(self, column: str) -> float | None:
        """Mean of a metric column over seeds, or None when no job reported it."""
        stat = self.stats.get(column)
        return stat.mean if stat else None

    def first_value(
        self, by_job: Mapping[str, RunRecord], read: Callable[[RunRecord], dict]
    ) -> dict:
        """``read(record)`` of the first job that has it (a figure is drawn from one seed)."""
        values = (read(by_job[job]) for job in self.jobs)
        return next((value for value in values if value), {})

    def first_file(self, by_job: Mapping[str, RunRecord], name: str) -> Path | None:
        """The file ``name`` in the folder of the first job that kept one, or None."""
        folders = (by_job[job].job_dir for job in self.jobs)
        return next((p for p in (Path(f) / name for f in folders if f) if p.is_file()), None)


def _stat(values: list[float]) -> Stat:
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(mean=statistics.fmean(values), std=std, n=len(values))


def aggregate_over_seeds(records: Iterable[RunRecord]) -> list[ConfigGroup]:
    """Group ok jobs by configuration and summarise every metric with mean, sample std and n."""
    groups: dict[tuple[str, str, str, str], ConfigGroup] = {}
    members: dict[tuple[str, str, str, str], list[RunRecord]] = {}
    for record in records:
        if not record.ok:
            continue
        ident = (record.dataset or "?", record.model or "?", record.defense or "?")
        key = (*ident, variant_of(record))
        groups.setdefault(key, ConfigGroup(*key))
        members.setdefault(key, []).append(record)
    for key, group in groups.items():
        cells = [metric_cells(record) for record in members[key]]
        for column in metric_columns(members[key]):
            values = [c[column] for c in cells if column in c]
            group.stats[column] = _stat(values)
        for record in members[key]:
            group.jobs.append(record.job)
            group.seeds.append(record.seed)
            for attack, curve in record.robust_accuracy.items():
                group.norms.setdefault(attack, record.robust_accuracy_norm.get(attack, "Linf"))
                known = group.robust_eps.setdefault(attack, [])
                known.extend(eps for eps in curve if eps not in known)
            group.detection_keys.extend(
                k for k in record.detection if k not in group.detection_keys
            )
            group.warnings.extend(w for w in record.warnings if w not in group.warnings)
        for known in group.robust_eps.values():
            known.sort(key=eps_order)
    _set_distinct(groups, members)
    return list(groups.values())


def sweep_norms(groups: Iterable[ConfigGroup]) -> dict[str, str]:
    """The norm of every curve of a sweep (the first configuration that has it decides)."""
    norms: dict[str, str] = {}
    for group in groups:
        for attack, norm in group.norms.items():
            norms.setdefault(attack, norm)
    return norms


def _set_distinct(groups: dict[tuple, ConfigGroup], members: dict[tuple, list[RunRecord]]) -> None:
    # Overrides every job got (e.g. a sweep-wide +trainer.epochs=2) only clutter the labels.
    tokens = [set(variant_parts(members[key][0])) for key in groups]
    shared = set.intersection(*tokens) if tokens else set()
    several_datasets = len({group.dataset for group in groups.values()}) > 1
    for group, mine in zip(groups.values(), tokens, strict=True):
        group.distinct = " ".join(sorted(mine - shared))
        group.show_dataset = several_datasets


def aggregate_table(groups: Sequence[ConfigGroup]) -> tuple[list[str], list[dict[str, Any]]]:
    """Flatten configuration groups into CSV columns/rows: ``<metric>_mean/_std/_n``."""
    metrics: dict[str, None] = {}
    for group in groups:
        metrics.update(dict.fromkeys(group.stats))
    ordered = sorted(metrics, key=_metric_rank)
    columns = ["dataset", "model", "defense", "variant", "n_jobs", "seeds"]
    columns += [f"{m}_{part}" for m in ordered for part in ("mean", "std", "n")]
    rows = []
    for group in groups:
        row: dict[str, Any] = {"dataset": group.dataset, "model": group.model}
        row.update(defense=group.defense, variant=group.distinct, n_jobs=len(group.jobs))
        row["seeds"] = " ".join("?" if s is None else str(s) for s in group.seeds)
        for metric, stat in group.stats.items():
            row.update({f"{metric}_mean": stat.mean, f"{metric}_std": stat.std})
            row[f"{metric}_n"] = stat.n
        rows.append(row)
    return columns, rows


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows (dicts) under the given columns; missing values and None become empty cells.

    The file is replaced atomically: a failure while writing (a row that cannot be written, a
    full disk, a killed report) leaves the previous table as it was.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path
