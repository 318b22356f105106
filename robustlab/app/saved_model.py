"""Jobs on a saved model (``robustlab-eval``, ``robustlab-detect``): a checkpoint robustlab wrote
or ``model=external``; load, run, record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import StageInputs, build_data, stage_inputs
from robustlab.app.external_model import build_external_model, evaluation_split, is_external
from robustlab.app.job_logger import job_logger
from robustlab.app.jobs import job_identity, publish_results, record_model, run_stage, start_job
from robustlab.app.saved_identity import saved_job_config
from robustlab.data import dataset_info
from robustlab.errors import ConfigError
from robustlab.loading import checkpoint_config, load_checkpoint
from robustlab.tracking.results import JobResults, StageResult


@dataclass
class SavedModel:
    """The model a job runs on, the job's config (the checkpoint's identity merged in), where
    the model came from, and the data set it was trained on when known."""

    config: DictConfig
    model: nn.Module
    source: str
    train_dataset: str | None = None


# a stage on the job's config (the checkpoint's identity merged in) and its shared inputs
Stage = Callable[[DictConfig, StageInputs], StageResult]


def command_line_overrides() -> list[str]:
    """The overrides this job was given on the command line (none outside a Hydra app)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def check_saved_identity(cfg: DictConfig, overrides: list[str]) -> None:
    """The start-up check of ``robustlab-eval``/``-detect``: ConfigError when the command line
    contradicts the checkpoint it names (its model, defense, seed, or data of another shape)."""
    if is_external(cfg.model) or cfg.paths.checkpoint is None:
        return
    saved = checkpoint_config(cfg.paths.checkpoint)
    saved_job_config(cfg, saved, overrides, checkpoint=str(cfg.paths.checkpoint))


def run_saved_model_job(cfg: DictConfig, out: Path, job_type: str, stage: Stage) -> dict[str, Any]:
    """Load ``paths.checkpoint`` (or build ``model=external``), run ``stage`` on it, write
    results.json and log to W&B."""
    device = start_job(cfg)
    saved = (external_job if is_external(cfg.model) else saved_job)(cfg, device)
    job_cfg = saved.config
    job = JobResults(job_identity(job_cfg, Path(out), device))
    if saved.train_dataset not in (None, job_cfg.data.name):  # data=<another of its shape>
        job.identity.train_dataset = saved.train_dataset
    record_model(job, saved.model, saved.source)
    with job_logger(job_cfg, out, job_type) as logger:
        bundle = evaluation_split(job_cfg.model, build_data(job_cfg))
        inputs = stage_inputs(job_cfg, saved.model, bundle)
        run_stage(job, job_type, lambda: stage(job_cfg, inputs))
        return publish_results(job, Path(out), logger)


def saved_job(cfg: DictConfig, device: torch.device) -> SavedModel:
    """The checkpoint's model, and the job's config with the checkpoint's identity (a command
    line that contradicts it is a ConfigError)."""
    if cfg.paths.checkpoint is None:
        raise ConfigError(
            "no checkpoint given: pass paths.checkpoint=DIR (a directory with model.safetensors, "
            "or a run directory with results.json), or model=external for a model robustlab "
            "did not train"
        )
    path = str(cfg.paths.checkpoint)
    saved = checkpoint_config(path)
    job_cfg = saved_job_config(cfg, saved, command_line_overrides(), checkpoint=path)
    return SavedModel(job_cfg, load_checkpoint(path, device), path, saved["data"]["name"])


def external_job(cfg: DictConfig, device: torch.device) -> SavedModel:
    """The job's config as given, the ``model=external`` model, where it came from."""
    if cfg.paths.checkpoint is not None:
        raise ConfigError(
            "model=external takes its model from model.factory or model.file: drop "
            "paths.checkpoint (or drop model=external to evaluate that checkpoint)"
        )
    model = build_external_model(cfg.model, dataset_info(cfg.data.name), device)
    source = cfg.model.file or cfg.model.weights or cfg.model.factory
    return SavedModel(cfg, model, str(source))
