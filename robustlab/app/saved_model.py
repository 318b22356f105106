"""Jobs on a saved model (``robustlab-eval``, ``robustlab-detect``): a checkpoint robustlab wrote
or ``model=external``; load, run, record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robustlab.app.builders import StageInputs, build_data, stage_inputs
from robustlab.app.external_model import build_external_model, evaluation_split, is_external
from robustlab.app.job_logger import job_logger
from robustlab.app.jobs import job_identity, publish_results, record_model, run_stage, start_job
from robustlab.data import dataset_info
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
    """Load ``paths.checkpoint`` (or build ``model=external``), run ``stage`` on it, write
    results.json and log to W&B."""
    device = start_job(cfg)
    job_cfg, model, source = (external_job if is_external(cfg.model) else saved_job)(cfg, device)
    job = JobResults(job_identity(job_cfg, Path(out), device))
    record_model(job, model, source)
    with job_logger(job_cfg, out, job_type) as logger:
        bundle = evaluation_split(job_cfg.model, build_data(job_cfg))
        inputs = stage_inputs(job_cfg, model, bundle)
        run_stage(job, job_type, lambda: stage(job_cfg, inputs))
        return publish_results(job, Path(out), logger)


def saved_job(cfg: DictConfig, device: torch.device) -> tuple[DictConfig, nn.Module, str]:
    """The job's config with the checkpoint's identity, the checkpoint's model, its path."""
    if cfg.paths.checkpoint is None:
        raise ConfigError(
            "no checkpoint given: pass paths.checkpoint=DIR (a directory with model.safetensors, "
            "or a run directory with results.json), or model=external for a model robustlab "
            "did not train"
        )
    job_cfg = with_saved_identity(cfg, checkpoint_config(cfg.paths.checkpoint))
    return job_cfg, load_checkpoint(cfg.paths.checkpoint, device), str(cfg.paths.checkpoint)


def external_job(cfg: DictConfig, device: torch.device) -> tuple[DictConfig, nn.Module, str]:
    """The job's config as given, the ``model=external`` model, where it came from."""
    if cfg.paths.checkpoint is not None:
        raise ConfigError(
            "model=external takes its model from model.factory or model.file: drop "
            "paths.checkpoint (or drop model=external to evaluate that checkpoint)"
        )
    model = build_external_model(cfg.model, dataset_info(cfg.data.name), device)
    source = cfg.model.file or cfg.model.weights or cfg.model.factory
    return cfg, model, str(source)
