"""Running one Hydra job safely: one-line errors, a failed results.json, never a broken sweep."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from robustlab.errors import RobustlabError
from robustlab.fileio import write_json_atomic

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"


def job_dir() -> Path:
    """This job's Hydra output directory."""
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    """Whether this job is part of a Hydra multirun (a sweep)."""
    return HydraConfig.get().mode == RunMode.MULTIRUN


def identity(cfg: DictConfig) -> dict[str, Any]:
    """The keys that name a job in results.json, known before anything runs."""
    return {
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "defense": cfg.defense.name,
        "seed": cfg.seed,
        "overrides": list(HydraConfig.get().overrides.task),
        "job_dir": str(job_dir()),
    }


def run_job(
    cfg: DictConfig, task: Callable[[DictConfig, Path], dict[str, Any]]
) -> dict[str, Any] | None:
    """Run ``task``; on failure write a failed results.json and, in a sweep, carry on.

    A user error (RobustlabError) in a single run prints one line and exits with code 2; an
    unexpected error keeps its traceback. In a multirun both are logged and recorded as a
    failed job so the remaining jobs and the sweep report still happen.
    """
    out = job_dir()
    try:
        return task(cfg, out)
    except Exception as err:
        failed = {"status": "failed", "error": f"{type(err).__name__}: {err}", **identity(cfg)}
        if not isinstance(err, RobustlabError):
            failed["traceback"] = traceback.format_exc(limit=8)
        try:
            write_json_atomic(out / RESULTS_FILE, failed)
        except OSError as write_err:
            log.error("could not record the failure in %s: %s", out, write_err)
        if in_multirun():
            log.error("job failed: %s", failed["error"])
            return None
        if isinstance(err, RobustlabError):
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise
