"""Jobs on a saved checkpoint (``robustlab-eval``, ``robustlab-detect``): load, run, record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robustlab.app.builders import StageInputs, build_data, stage_inputs
from robustlab.app.job_logger import job_logger
from robustlab.app.jobs import job_identity, publish_results, record_model, run_stage, start_job
from robustlab.errors import ConfigError
from robustlab.loading import checkpoint_config, load_checkpoint
from robustlab.tracking.results import JobResults, StageResult


def with_saved_identity(cfg: DictConfig, saved: dict[str, Any]) -> DictConfig:
    """``cfg`` with the data, model, defense and seed of the checkpoint (what it was trained on)."""
    merged = OmegaConf.to_container(cfg, resolve=True)
    for key in ("data", "model", "defense", "seed"):
        if key in saved:
            merged[key] = saved[key]
    if cfg.data.root is not None:
        merged["data"]["root"] = cfg.data.root
    return OmegaConf.create(merged)


# a stage on the job's config (the checkpoint's identity merged in) and its shared inputs
Stage = Callable[[DictConfig, StageInputs], StageResult]


def run_saved_model_job(cfg: DictConfig, out: Path, job_type: str, stage: Stage) -> dict[str, Any]:
    """Load ``paths.checkpoint``, run ``stage`` on it, write results.json and log to W&B."""
    device = start_job(cfg)
    if cfg.paths.checkpoint is None:
        raise ConfigError(
            "no checkpoint given: pass paths.checkpoint=DIR (a directory with model.safetensors)"
        )
    job_cfg = with_saved_identity(cfg, checkpoint_config(cfg.paths.checkpoint))
    model = load_checkpoint(cfg.paths.checkpoint, device)
    job = JobResults(job_identity(job_cfg, Path(out), device))
    record_model(job, model, str(cfg.paths.checkpoint))
    with job_logger(job_cfg, out, job_type) as logger:
        inputs = stage_inputs(job_cfg, model, build_data(job_cfg))
        run_stage(job, job_type, lambda: stage(job_cfg, inputs))
        return publish_results(job, Path(out), logger)
