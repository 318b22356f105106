"""The results contract: a job's typed stage results -> ``results.json`` and the W&B summary.

Every stage of a job returns a dataclass with ``to_results()`` (its fragment of results.json)
and ``warnings``: training a
[`robustlab.training.TrainingSummary`][robustlab.training.TrainingSummary], evaluation a
[`robustlab.evaluation.RobustnessReport`][robustlab.evaluation.RobustnessReport], detection a
[`robustlab.detection.DetectionReport`][robustlab.detection.DetectionReport], and so on.
[`results_payload`][robustlab.tracking.results.results_payload] is the ONE place that assembles them
into the results.json object, [`summary_metrics`][robustlab.tracking.results.summary_metrics] the
one that flattens that object for W&B, and ``robustlab.report.records`` reads the same schema back.

Schema history: version 1 files (no ``schema_version`` key) carry the same keys; version 2
adds ``schema_version`` and, with newer stages, more keys. Keys are added, never renamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from robustlab.errors import ConfigError

SCHEMA_VERSION = 2
MASKING_PREFIX = "gradient masking suspected"  # how robustlab.evaluation.masking's warnings begin
RESULTS_FILE = "results.json"


class StageResult(Protocol):
    """What every stage returns: its warnings and its fragment of results.json."""

    warnings: list[str]

    def to_results(self) -> dict[str, Any]: ...


@dataclass
class JobIdentity:
    """The keys that name a job, known before anything runs.

    ``dataset`` is the data set the job ran on; ``train_dataset`` is set only when the model
    was trained on another one (``robustlab-eval data=...`` on a data set of the same shape).
    ``logger_mode`` is what the W&B run actually did: ``online``, ``offline``, ``disabled`` or
    ``fell back to offline: <reason>``.
    """

    dataset: str
    model: str
    defense: str
    seed: int
    overrides: list[str] = field(default_factory=list)
    job_dir: str | None = None
    device: str | None = None
    train_dataset: str | None = None
    logger_mode: str | None = None

    def to_results(self) -> dict[str, Any]:
        """The identity keys of results.json (``device``, ``train_dataset`` and
        ``logger_mode`` only when known)."""
        keys = {
            "dataset": self.dataset,
            "model": self.model,
            "defense": self.defense,
            "seed": self.seed,
            "overrides": list(self.overrides),
            "job_dir": self.job_dir,
        }
        optional = {
            "device": self.device,
            "train_dataset": self.train_dataset,
            "logger_mode": self.logger_mode,
        }
        keys.update({key: value for key, value in optional.items() if value is not None})
        return keys


@dataclass
class JobResults:
    """One job: who it is, what its stages returned (in order) and how long each took.

    ``checkpoint``/``params``/``se_overhead`` describe the model the stages ran on.
    """

    identity: JobIdentity
    stages: dict[str, StageResult] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    params: int | None = None
    se_overhead: dict[str, Any] | None = None  # SE parameters, exact and the SE paper's Eq. 5

    def add(self, name: str, result: StageResult, seconds: float) -> None:
        """Record a finished stage and its wall time (``timing_s[name]``)."""
        self.stages[name] = result
        self.timing_s[name] = seconds


def _merge(payload: dict[str, Any], fragment: dict[str, Any], stage: str) -> None:
    """Add a stage's keys; dict-valued keys shared by stages (robust_accuracy) merge one level
    down, but no stage may overwrite a value another stage wrote."""
    for key, value in fragment.items():
        if key == "warnings":
            payload["warnings"].extend(value)
        elif key not in payload:
            payload[key] = value
        elif isinstance(payload[key], dict) and isinstance(value, dict):
            clash = set(payload[key]) & set(value)
            if clash:
                raise ConfigError(f"stage {stage!r} rewrites results.json {key}: {sorted(clash)}")
            payload[key].update(value)
        else:
            raise ConfigError(f"stage {stage!r} rewrites the results.json key {key!r}")


def results_payload(job: JobResults, status: str = "ok") -> dict[str, Any]:
    """The results.json object of a job: identity, then each stage's keys, warnings in order."""
    payload: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "status": status}
    payload.update(job.identity.to_results())
    if job.params is not None:
        payload["params"] = job.params
    if job.checkpoint is not None:
        payload["checkpoint"] = job.checkpoint
    if job.se_overhead is not None:
        payload["se_overhead"] = job.se_overhead
    payload["warnings"] = []
    for name, result in job.stages.items():
        fragment = dict(result.to_results())
        fragment.setdefault("warnings", list(result.warnings))
        _merge(payload, fragment, name)
    # stages may report the time of their parts (certify_smoothing); the job adds each stage's
    payload.setdefault("timing_s", {}).update(job.timing_s)
    return payload


def failed_payload(identity: JobIdentity, error: str, traceback: str | None = None) -> dict:
    """The results.json of a job that raised: its identity and the one-line error."""
    payload = {"schema_version": SCHEMA_VERSION, "status": "failed", "error": error}
    payload.update(identity.to_results())
    if traceback is not None:
        payload["traceback"] = traceback
    return payload


def write_results(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a results.json atomically (a reader never sees half a file)."""
    from robustlab.fileio import write_json_atomic  # imports torch; reading needs none

    write_json_atomic(path, payload)


def summary_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Flat scalar summary keys of a results.json object, for W&B panels and sweeps."""
    summary: dict[str, float] = {}
    for key in ("clean_accuracy", "params"):
        if isinstance(results.get(key), (int, float)):
            summary[key] = results[key]
    for attack, curve in results.get("robust_accuracy", {}).items():
        for eps, acc in curve.items():
            if acc is not None:
                summary[f"robust_accuracy/{attack}@{eps}"] = acc
    for name, metrics in results.get("detection", {}).items():
        for metric in ("auroc", "tnr_at_tpr95"):
            if isinstance(metrics.get(metric), (int, float)):
                summary[f"detection/{name}/{metric}"] = metrics[metric]
    for stage, seconds in results.get("timing_s", {}).items():
        summary[f"timing_s/{stage}"] = seconds
    cost = results.get("training_cost", {}).get("grad_evals_per_example")
    if cost is not None:
        summary["training_cost/grad_evals_per_example"] = cost
    warnings = results.get("warnings", [])
    summary["n_warnings"] = len(warnings)
    # W&B panels that rank runs can filter on it: a masked model's robust accuracy is not robust
    summary["masking_suspected"] = int(any(w.startswith(MASKING_PREFIX) for w in warnings))
    # the evaluation card's named checks (robustlab.evaluation.checks): 1 where one warns
    for name, check in results.get("checks", {}).items():
        summary[f"checks/{name}"] = int(check.get("status") == "warn")
    return summary
