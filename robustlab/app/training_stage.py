"""The training stage: build the defense's objective, train (or reuse a finished checkpoint)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robustlab.app.builders import DataBundle, build_loader, build_model, plain_config
from robustlab.training import (
    CrossEntropy,
    Monitor,
    build_optimizer,
    build_scheduler,
    finished_weights,
    fit,
    load_weights,
    save_weights,
)
from robustlab.training.checkpoint import WEIGHTS_META, read_json
from robustlab.training.objectives import (
    TRADES,
    AdversarialTraining,
    Distillation,
    FastAdversarialTraining,
    Objective,
)
from robustlab.training.robust_monitor import HeldOutRobustness, catastrophic_overfitting

log = logging.getLogger(__name__)

# the config sections that decide the trained weights; evaluation settings are left out so that
# evaluating the same model differently reuses its checkpoint
TRAINING_KEYS = ("data", "model", "train", "defense", "seed")


@dataclass
class TrainedModel:
    model: nn.Module
    directory: Path
    results: dict[str, Any]


def checkpoint_dir(cfg: DictConfig, role: str = "model") -> Path:
    """A directory named after a hash of the training config: same config, same checkpoint."""
    plain = plain_config(cfg)
    identity = {key: plain[key] for key in TRAINING_KEYS}
    for key in ("eval_batch_size", "root"):
        identity["data"].pop(key, None)
    identity["role"] = role
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{cfg.data.name}-{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}-{role}-{digest}"
    return Path(cfg.paths.checkpoints) / name


def build_objective(cfg: DictConfig, teacher: nn.Module | None = None) -> Objective:
    """The training objective of ``cfg.defense``."""
    d = cfg.defense
    alpha = d.step_size * d.eps
    if d.name == "none":
        return CrossEntropy()
    if d.name == "pgd_at":
        return AdversarialTraining(
            eps=d.eps,
            alpha=alpha,
            steps=d.steps,
            random_start=d.random_start,
            mix=d.mix,
            model_mode=d.model_mode,
            warmup_epochs=d.eps_warmup_epochs,
        )
    if d.name == "fast_at":
        return FastAdversarialTraining(eps=d.eps, alpha=alpha)
    if d.name == "trades":
        return TRADES(eps=d.eps, alpha=alpha, steps=d.steps, beta=d.beta)
    if d.name == "distillation":
        return Distillation(teacher=teacher, temperature=d.temperature)
    raise ValueError(f"unknown defense {d.name}")


def _fit_or_reuse(
    cfg: DictConfig,
    bundle: DataBundle,
    device: torch.device,
    objective: Objective,
    role: str,
    epochs: int,
    log_metrics=None,
) -> TrainedModel:
    model = build_model(cfg, bundle.info, device)
    directory = checkpoint_dir(cfg, role)
    meta_config = plain_config(cfg)
    if cfg.reuse_checkpoints and finished_weights(directory):
        load_weights(directory, model)
        meta = read_json(directory / WEIGHTS_META)
        log.info("reusing the finished %s checkpoint %s", role, directory)
        return TrainedModel(
            model, directory, {**meta.get("results", {}), "reused_checkpoint": True}
        )
    loader = build_loader(cfg, bundle, device)
    optimizer = build_optimizer(
        model,
        cfg.train.optimizer,
        cfg.train.lr,
        cfg.train.momentum,
        cfg.train.weight_decay,
        cfg.train.nesterov,
    )
    scheduler = build_scheduler(
        optimizer, cfg.train.scheduler, epochs, len(loader), cfg.train.warmup_epochs
    )
    callbacks, monitor = [], None
    if cfg.defense.monitor_heldout and role == "model":
        # a fixed batch of the validation split: never the test set
        val_x, val_y = bundle.val
        n = cfg.defense.heldout_size
        eps = cfg.defense.eps
        callbacks.append(
            HeldOutRobustness(
                val_x[:n].to(device),
                val_y[:n].to(device),
                eps=eps,
                alpha=eps / 4,
                steps=cfg.defense.heldout_steps,
            )
        )
        monitor = Monitor("heldout_pgd_accuracy", "max")
    amp = torch.bfloat16 if cfg.train.amp and device.type == "cuda" else None
    result = fit(
        model,
        loader,
        objective,
        optimizer,
        epochs,
        scheduler=scheduler,
        checkpoint_dir=directory,
        config={k: meta_config[k] for k in TRAINING_KEYS},
        callbacks=callbacks,
        monitor=monitor,
        log_metrics=log_metrics,
        amp_dtype=amp,
    )
    results = {
        "train_seconds": result.seconds,
        "grad_evals_per_example": result.grad_evals_per_example,
        "epochs": epochs,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "objective": objective.describe(),
    }
    warning = catastrophic_overfitting(result.history) if monitor else None
    if warning:
        results["warnings"] = [warning]
    save_weights(directory, model, {"config": meta_config, "epoch": epochs, "results": results})
    return TrainedModel(model, directory, {**results, "reused_checkpoint": False})


def train_stage(
    cfg: DictConfig, bundle: DataBundle, device: torch.device, log_metrics=None
) -> TrainedModel:
    """Train the configured model and defense; distillation trains (or reuses) its teacher first."""
    started = time.perf_counter()
    teacher = None
    extra: dict[str, Any] = {}
    if cfg.defense.name == "distillation":
        epochs = cfg.defense.teacher_epochs or cfg.train.epochs
        teacher_run = _fit_or_reuse(
            cfg,
            bundle,
            device,
            CrossEntropy(temperature=cfg.defense.temperature, scale_by_temperature=True),
            "teacher",
            epochs,
        )
        teacher = teacher_run.model
        extra["teacher"] = {
            k: teacher_run.results.get(k) for k in ("train_seconds", "grad_evals_per_example")
        }
    trained = _fit_or_reuse(
        cfg, bundle, device, build_objective(cfg, teacher), "model", cfg.train.epochs, log_metrics
    )
    trained.results.update(extra)
    trained.results["stage_seconds"] = time.perf_counter() - started
    return trained


def config_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML, for logs."""
    return OmegaConf.to_yaml(cfg, resolve=True)
