"""The training stage: train the defense's objective, or reuse a finished checkpoint. Reads
the nodes that decide the weights (``data``, ``model``, ``train``, ``defense``, ``seed``) and
where checkpoints live (``paths``, ``reuse_checkpoints``)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import (
    DataBundle,
    build_defense,
    build_loader,
    build_model,
    plain_config,
)
from robustlab.distributed import barrier, broadcast_object, is_main_process, world_size
from robustlab.models.acceleration import amp_dtype, prepare_model
from robustlab.training import (
    Monitor,
    Objective,
    build_optimizer,
    build_scheduler,
    finished_weights,
    fit,
    load_weights,
    save_weights,
)
from robustlab.training.checkpoint import WEIGHTS_META, read_json
from robustlab.training.checkpoint_lock import checkpoint_lock
from robustlab.training.fit import EpochCallback
from robustlab.training.objectives import HeldOutCheck
from robustlab.training.robust_monitor import (
    HeldOutRobustness,
    catastrophic_overfitting,
    early_stopping,
    keep_last_weights,
)
from robustlab.training.staging import (
    discard_staging,
    prepare_staging,
    publish,
    staging_directory,
)
from robustlab.training.summary import TrainingSummary

log = logging.getLogger(__name__)

# the config sections that decide the trained weights (the defense enters through its objective);
# evaluation settings are left out so that evaluating the same model differently reuses it
TRAINING_KEYS = ("data", "model", "train", "seed")
# where files live, not what is trained
IGNORED_DATA_KEYS = ("root",)
# bump when a change to the training code changes the weights a config produces
CHECKPOINT_FORMAT = 2
# train keys added after checkpoints existed, left out of the identity at these values (which
# train as before), so that adding them kept every earlier checkpoint's directory; compile is
# how the same weights are computed, never part of the identity
# sync_bn=true gives the one-process weights for any number of processes (one process has
# nothing to synchronise): only per-rank BatchNorm statistics change them
NEUTRAL_TRAIN_KEYS = {"milestones": [], "lr_gamma": 0.1, "sync_bn": True}
IGNORED_TRAIN_KEYS = ("compile",)


@dataclass
class TrainedModel:
    """A trained (or reused) model, its checkpoint directory and its training summary."""

    model: nn.Module
    directory: Path
    summary: TrainingSummary
    noise_sigma: float | None = None  # the std of the training noise (gaussian_noise)


def training_identity(
    cfg: DictConfig,
    role: str,
    objective: Objective,
    epochs: int,
    *,
    teacher: str | None = None,
    heldout: HeldOutCheck | None = None,
) -> dict[str, Any]:
    """Everything that decides the weights: hashed into the directory, checked on resume.

    The defense enters through what its objective uses (``objective.describe()``) and its
    held-out check (it picks the kept epoch), so a setting that changes neither (the check's
    size while the check is off) does not force a retrain.
    """
    plain = plain_config(cfg)
    identity = {key: plain[key] for key in TRAINING_KEYS}
    identity["model"] = {k: v for k, v in identity["model"].items() if v is not None}
    for key in IGNORED_DATA_KEYS:
        identity["data"].pop(key, None)
    identity["train"] = {
        k: v
        for k, v in identity["train"].items()
        if NEUTRAL_TRAIN_KEYS.get(k, ...) != v and k not in IGNORED_TRAIN_KEYS
    }
    identity.update(defense=cfg.defense.name, role=role, objective=objective.describe())
    identity["epochs"] = epochs
    identity["format"] = CHECKPOINT_FORMAT
    if teacher is not None:
        identity["teacher"] = teacher
    if role == "model" and heldout is not None:
        identity["monitor"] = {"size": heldout.size, "steps": heldout.steps, "eps": heldout.eps}
    return identity


def heldout_monitor(
    check: HeldOutCheck | None, bundle: DataBundle, device: torch.device, seed: int
) -> tuple[list[EpochCallback], Monitor | None]:
    """PGD accuracy on a fixed validation batch each epoch, and keeping the best epoch by it.

    Fast adversarial training can overfit catastrophically within an epoch (Wong et al. 2020);
    the batch comes from the validation split, never from the test set.
    """
    if check is None:
        return [], None
    val_x, val_y = bundle.val
    monitor = HeldOutRobustness(
        val_x[: check.size].to(device),
        val_y[: check.size].to(device),
        eps=check.eps,
        alpha=check.eps / 4,
        steps=check.steps,
        seed=seed,
    )
    return [monitor], Monitor("heldout_pgd_accuracy", "max")


def checkpoint_dir(cfg: DictConfig, identity: dict[str, Any]) -> Path:
    """A directory named after a hash of the training identity: same config, same checkpoint."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{cfg.data.name}-{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}-{identity['role']}"
    return Path(cfg.paths.checkpoints) / f"{name}-{digest}"


def _train(
    cfg: DictConfig,
    bundle: DataBundle,
    device: torch.device,
    model: nn.Module,
    objective: Objective,
    *,
    directories: tuple[Path, Path],
    identity: dict[str, Any],
    log_metrics,
    heldout: HeldOutCheck | None,
) -> TrainingSummary:
    """Train into the staging directory (``directories``: staging, final checkpoint)."""
    staging, directory = directories
    loader = build_loader(cfg, bundle, device)
    t, epochs = cfg.train, identity["epochs"]
    optimizer = build_optimizer(
        model,
        t.optimizer,
        t.lr,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        nesterov=t.nesterov,
    )
    scheduler = build_scheduler(
        optimizer,
        t.scheduler,
        epochs,
        len(loader),
        warmup_epochs=t.warmup_epochs,
        gamma=t.lr_gamma,
        epoch_milestones=list(t.milestones),
    )
    callbacks, monitor = heldout_monitor(heldout, bundle, device, cfg.seed)
    result = fit(
        model,
        loader,
        objective,
        optimizer,
        epochs=epochs,
        scheduler=scheduler,
        checkpoint_dir=staging,
        config=identity,
        callbacks=callbacks,
        monitor=monitor,
        log_metrics=log_metrics,
        amp_dtype=amp_dtype(t.amp, device, "train.amp"),
        sync_batchnorm=t.sync_bn,
    )
    warning = catastrophic_overfitting(result.history) if monitor else None
    stopping = early_stopping(result.history) if monitor else None
    if stopping is not None and is_main_process():
        last = keep_last_weights(staging)  # published with the rest: named at its final place
        stopping.last_weights = str(directory / last.name) if last else None
    return TrainingSummary(
        epochs=epochs,
        train_seconds=result.seconds,
        grad_evals_per_example=result.grad_evals_per_example,
        best_epoch=result.best_epoch,
        history=result.history,
        warnings=[warning] if warning else [],
        early_stopping=stopping.to_results() if stopping else None,
        world_size=world_size(),
    )


def _reuse(directory: Path, model: nn.Module, role: str) -> TrainedModel:
    load_weights(directory, model)
    meta = read_json(directory / WEIGHTS_META)
    log.info("reusing the finished %s checkpoint %s", role, directory)
    summary = TrainingSummary.from_json(meta.get("results", {}), reused=True)
    return TrainedModel(model, directory, summary)


def fit_or_reuse(
    cfg: DictConfig,
    bundle: DataBundle,
    device: torch.device,
    identity: dict[str, Any],
    objective: Objective,
    *,
    log_metrics=None,
    heldout: HeldOutCheck | None = None,
) -> TrainedModel:
    """Train ``objective`` into its checkpoint directory, resuming or reusing what is there.

    The directory's lock lets one of several jobs with the same identity train while the
    others wait and then reuse its checkpoint. Training happens in ``<directory>.partial``,
    which replaces the directory atomically once the final weights are written: a retrain
    (``reuse_checkpoints=false``) that fails or is killed leaves the finished checkpoint it
    was replacing in place. Under DDP every rank follows rank 0's decision and only rank 0
    writes.
    """
    model = prepare_model(build_model(cfg, bundle.info, device), device, cfg.train.compile)
    directory = checkpoint_dir(cfg, identity)
    with checkpoint_lock(directory):
        if broadcast_object(bool(cfg.reuse_checkpoints and finished_weights(directory))):
            if is_main_process():
                discard_staging(directory)
            return _reuse(directory, model, identity["role"])
        if is_main_process():
            if not cfg.reuse_checkpoints and directory.exists():
                log.info(
                    "reuse_checkpoints=false: retraining from scratch; %s stays until the new "
                    "checkpoint is finished",
                    directory,
                )
            prepare_staging(directory, fresh=not cfg.reuse_checkpoints)
        barrier()  # nobody reads a resume point that rank 0 is preparing
        staging = staging_directory(directory)
        directories = (staging, directory)
        summary = _train(
            cfg,
            bundle,
            device,
            model,
            objective,
            directories=directories,
            identity=identity,
            log_metrics=log_metrics,
            heldout=heldout,
        )
        meta = {
            "config": plain_config(cfg),
            "identity": identity,
            "epoch": identity["epochs"],
            "results": {**summary.to_json(), "objective": objective.describe()},
        }
        if is_main_process():
            save_weights(staging, model, meta)
            publish(staging, directory)
        barrier()  # the lock is released only after the new checkpoint is in place
    return TrainedModel(model, directory, summary)


def train_stage(
    cfg: DictConfig, bundle: DataBundle, device: torch.device, log_metrics=None
) -> TrainedModel:
    """Train the configured model and defense; distillation trains (or reuses) its teacher first."""
    defense = build_defense(cfg.defense)
    teacher, plan = None, defense.teacher()
    if plan is not None:
        objective, epochs = plan
        identity = training_identity(cfg, "teacher", objective, epochs or cfg.train.epochs)
        teacher = fit_or_reuse(cfg, bundle, device, identity, objective)
    objective = defense.objective(teacher.model if teacher else None)
    heldout = defense.heldout_check()
    teacher_name = teacher.directory.name if teacher else None
    identity = training_identity(
        cfg, "model", objective, cfg.train.epochs, teacher=teacher_name, heldout=heldout
    )
    trained = fit_or_reuse(
        cfg, bundle, device, identity, objective, log_metrics=log_metrics, heldout=heldout
    )
    trained.summary.teacher = teacher.summary if teacher else None
    trained.noise_sigma = defense.noise_sigma()
    return trained
