"""Rebuilding a trained model from its checkpoint directory (safetensors + JSON, no pickle)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robustlab.app.builders import DataBundle, build_data, build_model
from robustlab.app.jobs import identity
from robustlab.app.logging_setup import job_logger, record_results
from robustlab.app.validate import validate_config
from robustlab.data import dataset_info
from robustlab.errors import CheckpointError, ConfigError
from robustlab.models import model_param_count
from robustlab.runtime import resolve_device, seed_everything
from robustlab.training import finished_weights, load_weights
from robustlab.training.checkpoint import WEIGHTS_META, read_json


@dataclass
class SavedModel:
    """A model rebuilt from a checkpoint directory, with the config it was trained with."""

    model: nn.Module
    directory: Path
    config: dict[str, Any]


def load_saved_model(cfg: DictConfig, device: torch.device) -> SavedModel:
    """The model in ``cfg.paths.checkpoint``, built from the config stored beside its weights."""
    if cfg.paths.checkpoint is None:
        raise ConfigError(
            "no checkpoint given: pass paths.checkpoint=DIR (a directory with model.safetensors)"
        )
    directory = Path(cfg.paths.checkpoint)
    if finished_weights(directory) is None:
        raise CheckpointError(
            f"{directory} holds no finished checkpoint (model.safetensors + model.json): "
            "train it first"
        )
    saved = read_json(directory / WEIGHTS_META).get("config")
    if not isinstance(saved, dict) or "model" not in saved or "data" not in saved:
        raise CheckpointError(
            f"{directory / WEIGHTS_META} has no model/data config: it was not written by robustlab"
        )
    saved_cfg = OmegaConf.create(saved)
    model = build_model(saved_cfg, dataset_info(saved_cfg.data.name), device)
    load_weights(directory, model)
    model.eval()
    return SavedModel(model, directory, saved)


def with_saved_identity(cfg: DictConfig, saved: dict[str, Any]) -> DictConfig:
    """``cfg`` with the data, model, defense and seed of the checkpoint (what it was trained on)."""
    merged = OmegaConf.to_container(cfg, resolve=True)
    for key in ("data", "model", "defense", "seed"):
        if key in saved:
            merged[key] = saved[key]
    if cfg.data.root is not None:
        merged["data"]["root"] = cfg.data.root
    return OmegaConf.create(merged)


Stage = Callable[[DictConfig, nn.Module, DataBundle], dict[str, Any]]


def run_saved_model_job(cfg: DictConfig, out: Path, job_type: str, stage: Stage) -> dict[str, Any]:
    """Load ``paths.checkpoint``, run ``stage`` on it, write results.json and log to W&B."""
    validate_config(cfg)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, threads=cfg.threads)
    saved = load_saved_model(cfg, device)
    job_cfg = with_saved_identity(cfg, saved.config)
    results: dict[str, Any] = {
        "status": "running",
        **identity(job_cfg),
        "checkpoint": str(saved.directory),
    }
    results["params"] = model_param_count(saved.model)
    with job_logger(job_cfg, out, job_type) as logger:
        started = time.perf_counter()
        results.update(stage(job_cfg, saved.model, build_data(job_cfg)))
        results["timing_s"] = {job_type: time.perf_counter() - started}
        record_results(results, out, logger)
    return results
