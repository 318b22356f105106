"""One RunRecord per job of a Hydra sweep, read tolerantly from ``<job>/results.json``.

A sweep is summarised after the fact, often after some jobs crashed, so nothing here raises on a
bad job: a missing, corrupt or odd results.json becomes a failed record that carries the reason.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustlab.report.norms import recorded_norms
from robustlab.tracking.results import RESULTS_FILE

log = logging.getLogger(__name__)

NO_RESULTS_ERROR = "no results.json: the job stopped before writing its results (see its log)"
# Overrides that name the columns of a record; the pipeline writes them into results.json too.
IDENTITY_OVERRIDES = {
    "model": "model",
    "defense": "defense",
    "data": "dataset",
    "dataset": "dataset",
}


@dataclass
class RunRecord:
    """One sweep job, ok or failed; absent values are None or empty, never missing attributes."""

    job: str  # job folder relative to the sweep folder, e.g. "3" or "model=x/seed=0"
    status: str  # "ok" or "failed"
    schema_version: int = 1  # results.json files without the key are version 1
    dataset: str | None = None
    model: str | None = None
    defense: str | None = None
    seed: int | None = None
    params: int | None = None
    clean_accuracy: float | None = None
    robust_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    robust_accuracy_ci: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # the norm of every robust_accuracy curve: "Linf", "L2", "L1" or "L0"
    robust_accuracy_norm: dict[str, str] = field(default_factory=dict)
    detection: dict[str, dict[str, Any]] = field(default_factory=dict)
    detectors: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # by detector
    explanations: dict[str, Any] = field(default_factory=dict)  # the explain stage's figures
    se_overhead: dict[str, Any] = field(default_factory=dict)  # SE parameters, exact and Eq. 5
    # curves of the certify stage: "smoothing", "lipschitz" and "min_norm/<norm>" -> {r: acc}
    certified_curves: dict[str, dict[str, float]] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)
    training_cost: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    error: str | None = None
    job_dir: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the job finished and wrote its results."""
        return self.status == "ok"


def parse_override(override: str) -> tuple[str, str]:
    """Split a Hydra override ``+key=value`` into ``("key", "value")``; no ``=`` -> value ""."""
    key, _, value = override.partition("=")
    return key.lstrip("+~").strip(), value.strip()


def as_eps_key(eps: Any) -> str:
    """An eps read back or given as a results.json key (``repr(float(eps))``); else its text."""
    try:
        return repr(float(eps))
    except (TypeError, ValueError):
        return str(eps)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _as_int(value: Any) -> int | None:
    number = _as_float(value)
    return int(number) if number is not None and number == int(number) else None


def _as_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value) or None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _float_map(value: Any, key=str) -> dict[str, float]:
    pairs = ((key(k), _as_float(v)) for k, v in _dict(value).items())
    return {k: v for k, v in pairs if v is not None}


def _robust(value: Any) -> dict[str, dict[str, float]]:
    curves = {
        str(attack): _float_map(per_eps, key=as_eps_key) for attack, per_eps in _dict(value).items()
    }
    return {attack: curve for attack, curve in curves.items() if curve}


def _intervals(value: Any) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for attack, per_eps in _dict(value).items():
        for eps, bounds in _dict(per_eps).items():
            if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
                lo, hi = _as_float(bounds[0]), _as_float(bounds[1])
                if lo is not None and hi is not None:
                    out.setdefault(str(attack), {})[as_eps_key(eps)] = [lo, hi]
    return out


def _detection(value: Any) -> dict[str, dict[str, Any]]:
    """Keep numeric metrics and the ``baseline_*`` and ``adaptive`` sub-dicts of numeric metrics
    per attack@eps key."""
    out: dict[str, dict[str, Any]] = {}
    for key, metrics in _dict(value).items():
        entry: dict[str, Any] = _float_map(metrics)
        for name, sub in _dict(metrics).items():
            wanted = str(name).startswith("baseline_") or name == "adaptive"
            if wanted and _float_map(sub):
                entry[str(name)] = _float_map(sub)
        if entry:
            out[str(key)] = entry
    return out


def _detectors(payload: dict) -> dict[str, dict[str, dict[str, Any]]]:
    """Every detector's entries (``"detectors"``), or the one detector of ``"detection"``."""
    if _dict(payload.get("detectors")):
        parsed = {str(k): _detection(v) for k, v in payload["detectors"].items()}
        return {name: entries for name, entries in parsed.items() if entries}
    detection = _dict(payload.get("detection"))
    names = {str(_dict(e).get("detector", "mahalanobis")) for e in detection.values()}
    primary = names.pop() if len(names) == 1 else "mahalanobis"
    entries = _detection(detection)
    return {primary: entries} if entries else {}


def _certified_curves(payload: dict) -> dict[str, dict[str, float]]:
    """The certify stage's accuracy-vs-radius curves (certificates and minimum-norm attacks)."""
    curves = {
        "smoothing": _dict(_dict(payload.get("certified_accuracy")).get("smoothing")).get("curve"),
        "lipschitz": _dict(payload.get("lipschitz")).get("curve"),
    }
    for norm, curve in _dict(payload.get("min_norm_curve")).items():
        curves[f"min_norm/{norm}"] = curve
    parsed = {name: _float_map(curve, key=as_eps_key) for name, curve in curves.items()}
    return {name: curve for name, curve in parsed.items() if curve}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return []


def _status(payload: dict) -> str:
    status = str(payload.get("status", "")).strip().lower()
    if status in ("ok", "success", "succeeded", "completed"):
        return "ok"
    if not status and not payload.get("error"):
        return "ok"  # results written before the status key existed
    return "failed"


def record_from_payload(job: str, payload: dict, job_dir: str | None = None) -> RunRecord:
    """Build a RunRecord from a parsed results.json, ignoring values of the wrong type."""
    status = _status(payload)
    error = _as_str(payload.get("error"))
    if status == "failed" and error is None:
        raw = payload.get("status")
        error = f"job reported status {raw!r} without an error message"
    robust = _robust(payload.get("robust_accuracy"))
    return RunRecord(
        job=job,
        status=status,
        schema_version=_as_int(payload.get("schema_version")) or 1,
        dataset=_as_str(payload.get("dataset")),
        model=_as_str(payload.get("model")),
        defense=_as_str(payload.get("defense")),
        seed=_as_int(payload.get("seed")),
        params=_as_int(payload.get("params")),
        clean_accuracy=_as_float(payload.get("clean_accuracy")),
        robust_accuracy=robust,
        robust_accuracy_ci=_intervals(payload.get("robust_accuracy_ci")),
        robust_accuracy_norm=recorded_norms(payload, robust),
        detection=_detection(payload.get("detection")),
        detectors=_detectors(payload),
        certified_curves=_certified_curves(payload),
        explanations=_dict(payload.get("explanations")),
        se_overhead=_dict(payload.get("se_overhead")),
        timing_s=_float_map(payload.get("timing_s")),
        training_cost=_float_map(payload.get("training_cost")),
        warnings=list(dict.fromkeys(_strings(payload.get("warnings")))),  # a repeat says no more
        overrides=_strings(payload.get("overrides")),
        error=error,
        job_dir=_as_str(payload.get("job_dir")) or job_dir,
    )


def read_hydra_overrides(job_dir: str | Path) -> list[str]:
    """The job's overrides from ``.hydra/overrides.yaml``; [] when absent or unreadable."""
    path = Path(job_dir) / ".hydra" / "overrides.yaml"
    try:
        return _strings(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []


def load_sweep_overrides(sweep_dir: str | Path) -> list[str]:
    """The sweep's command-line overrides from ``multirun.yaml`` (hydra.overrides.task)."""
    try:
        config = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    return _strings(_dict(_dict(_dict(config).get("hydra")).get("overrides")).get("task"))


def _fill_from_overrides(record: RunRecord) -> None:
    """Failed jobs often lack model/defense/seed in their payload; the overrides still say them."""
    for override in record.overrides:
        key, value = parse_override(override)
        if key == "seed" and record.seed is None:
            record.seed = _as_int(value)
        elif (
            key in IDENTITY_OVERRIDES and value and getattr(record, IDENTITY_OVERRIDES[key]) is None
        ):
            setattr(record, IDENTITY_OVERRIDES[key], value)


def _read_job(sweep: Path, job_dir: Path) -> RunRecord:
    job = job_dir.relative_to(sweep).as_posix()
    hydra_overrides = read_hydra_overrides(job_dir)
    path = job_dir / RESULTS_FILE
    payload: Any = None
    if not path.exists():
        error = NO_RESULTS_ERROR
    else:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            error = None if isinstance(payload, dict) else "results.json is not a JSON object"
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            error = f"unreadable results.json: {type(exc).__name__}: {exc}"
    if error is None:
        record = record_from_payload(job, payload, job_dir=str(job_dir))
    else:
        record = RunRecord(job=job, status="failed", error=error, job_dir=str(job_dir))
    record.overrides = record.overrides or hydra_overrides
    _fill_from_overrides(record)
    return record


def _natural_key(text: str) -> list:
    # re.split with a group alternates text/number, so positions compare like with like.
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", text))]


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job folders under a sweep: those holding results.json or a Hydra ``.hydra/`` folder."""
    sweep = Path(sweep_dir)
    found = []
    for root, dirs, files in os.walk(sweep):
        if RESULTS_FILE in files or ".hydra" in dirs:
            found.append(Path(root))
            dirs[:] = []  # a job's own sub-folders (checkpoints, wandb) are not jobs
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(sweep).as_posix()))


def load_run_records(sweep_dir: str | Path) -> list[RunRecord]:
    """Read every job of a sweep folder (nested folders included) in natural job order."""
    sweep = Path(sweep_dir)
    records = [_read_job(sweep, job_dir) for job_dir in find_job_dirs(sweep)]
    log.info("read %d job(s) from %s", len(records), sweep)
    return records
