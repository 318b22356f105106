"""The ONE training loop: every defense is an objective plugged in here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from robustlab.distributed import barrier, is_main_process
from robustlab.errors import CheckpointError, ConfigError
from robustlab.fileio import json_safe
from robustlab.progress import progress
from robustlab.training.checkpoint import TrainingState
from robustlab.training.ddp import shard_batch, summed, wrap_model
from robustlab.training.objectives.base import Objective

log = logging.getLogger(__name__)


class EpochCallback(Protocol):
    """Measures something after each epoch (e.g. PGD accuracy on a held-out batch)."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, float]: ...


class BatchSource(Protocol):
    """What fit needs of a loader: iteration, a length and a per-epoch seed."""

    def __iter__(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...


@dataclass
class FitResult:
    """What a finished (or resumed-and-finished) training run reports."""

    history: list[dict[str, float]]
    seconds: float
    grad_evals_per_example: float
    best_epoch: int | None = None
    resumed_from: int | None = None


@dataclass
class Monitor:
    """Keep the weights of the best epoch by ``metric`` and restore them at the end."""

    metric: str
    mode: str = "max"

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` (None: nothing seen yet)."""
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best


def _train_epoch(
    model: nn.Module,
    loader: BatchSource,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    autocast: Callable[[], Any],
    schedule: tuple[int, int],
) -> dict[str, float]:
    epoch, epochs = schedule
    objective.on_epoch_start(epoch, epochs)
    loader.set_epoch(epoch)
    desc = f"epoch {epoch + 1}/{epochs}"
    model.train()
    loss_sum, correct, seen, grad_evals = 0.0, 0, 0, 0
    for batch_images, batch_labels in progress(loader, desc=desc, total=len(loader)):
        shard = shard_batch(batch_images, batch_labels)  # this rank's rows under DDP
        with shard.active() as (images, labels), autocast():
            step = objective(model, images, labels)
        optimizer.zero_grad(set_to_none=True)
        shard.weighted(step.loss).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        batch = labels.shape[0]
        if batch:  # an empty shard's mean loss is NaN (0 / 0) and counts for nothing
            loss_sum += float(step.loss.detach()) * batch
        correct += int((step.logits.argmax(1) == labels).sum())
        seen += batch
        grad_evals += step.grad_evals
    loss_sum, correct, seen, grad_evals = summed([loss_sum, correct, seen, grad_evals])
    if seen == 0:
        raise ConfigError("the training loader produced no batches: lower batch_size or drop_last")
    lr = optimizer.param_groups[0]["lr"]
    return {
        "loss": loss_sum / seen,
        "train_accuracy": correct / seen,
        "lr": lr,
        "grad_evals": grad_evals,
        "examples": seen,
        "epoch": epoch + 1,
    }


def _autocast(model: nn.Module, amp_dtype: torch.dtype | None) -> Callable[[], Any]:
    if amp_dtype is None:
        return nullcontext
    device = next(model.parameters()).device
    return lambda: torch.autocast(device.type, dtype=amp_dtype)


def fit(
    model: nn.Module,
    loader: BatchSource,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    checkpoint_dir: str | Path | None = None,
    config: dict[str, Any] | None = None,
    callbacks: Sequence[EpochCallback] = (),
    monitor: Monitor | None = None,
    log_metrics: Callable[[dict[str, float]], None] | None = None,
    amp_dtype: torch.dtype | None = None,
    sync_batchnorm: bool = True,
) -> FitResult:
    """Train ``model`` for ``epochs`` with ``objective``; resume from ``checkpoint_dir`` if present.

    Each epoch ends with a complete checkpoint (model, optimizer, scheduler, RNG), so a run
    killed at any point and started again with the same directory and config finishes with the
    same weights as an uninterrupted one (on CPU).

    In a process group (torchrun, SLURM: ``robustlab.distributed``) it trains under DDP on each
    rank's share of every global batch (any split: a rank may hold no rows of a last batch),
    BatchNorm over the global batch unless ``sync_batchnorm=False``; only rank 0 writes
    checkpoints.
    """
    state = TrainingState(checkpoint_dir) if checkpoint_dir is not None else None
    config = json_safe(config) if config is not None else None
    run = _RunState()
    if state is not None and (resumed := _resume(state, model, optimizer, scheduler, config)):
        run = resumed
        log.info("resuming from epoch %d in %s", run.start, checkpoint_dir)
    autocast = _autocast(model, amp_dtype)
    began = time.perf_counter()
    trained, unwrap = wrap_model(model, sync_batchnorm)
    try:
        for epoch in range(run.start, epochs):
            schedule = (epoch, epochs)
            metrics = _train_epoch(
                trained,
                loader,
                objective,
                optimizer,
                scheduler,
                autocast=autocast,
                schedule=schedule,
            )
            _record_epoch(
                run, metrics, model, callbacks=callbacks, log_metrics=log_metrics, epochs=epochs
            )
            if state is not None and is_main_process():
                run.seconds = run.prior_seconds + time.perf_counter() - began
                modules = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
                _save_epoch(state, run, epoch + 1, modules=modules, monitor=monitor, config=config)
    finally:
        unwrap()
    barrier()  # every rank reads the best epoch rank 0 wrote
    return _finish(state, run, model, monitor, run.prior_seconds + time.perf_counter() - began)


def _record_epoch(
    run: _RunState,
    metrics: dict[str, float],
    model: nn.Module,
    *,
    callbacks: Sequence[EpochCallback],
    log_metrics: Callable[[dict[str, float]], None] | None,
    epochs: int,
) -> None:
    """Add the callbacks' measurements to an epoch's metrics, keep, log and report them."""
    epoch = int(metrics["epoch"]) - 1
    for callback in callbacks:
        metrics.update(callback.on_epoch_end(epoch, model))
    run.history.append(metrics)
    log.info("epoch %d/%d %s", epoch + 1, epochs, _format(metrics))
    if log_metrics is not None:
        log_metrics(metrics)


def _save_epoch(
    state: TrainingState,
    run: _RunState,
    epoch: int,
    *,
    modules: dict[str, Any],
    monitor: Monitor | None,
    config: dict[str, Any] | None,
) -> None:
    """End an epoch on disk: the best weights so far (by ``monitor``) and a complete resume
    point (model, optimizer, scheduler, RNG)."""
    metrics = run.history[-1]
    if monitor is not None and monitor.better(metrics[monitor.metric], run.best_value):
        run.best_value = metrics[monitor.metric]
        state.save_best(modules["model"], epoch, monitor.metric, run.best_value)
    saved = {name: module for name, module in modules.items() if module is not None}
    state.save(epoch, {**saved, "rng": _rng_state()}, run.info(config))


def _finish(
    state: TrainingState | None,
    run: _RunState,
    model: nn.Module,
    monitor: Monitor | None,
    seconds: float,
) -> FitResult:
    """Restore the monitored best epoch, if any, and report the run."""
    best = state.best() if monitor is not None and state is not None else None
    if best is not None:
        state.restore_best(model)
    total_evals = sum(h["grad_evals"] for h in run.history)
    examples = run.history[0]["examples"] if run.history else 1
    return FitResult(
        run.history,
        seconds,
        total_evals / examples,
        best["epoch"] if best else None,
        run.start if run.start else None,
    )


@dataclass
class _RunState:
    """What a checkpoint carries besides tensors: progress so far."""

    history: list[dict[str, float]] = field(default_factory=list)
    start: int = 0
    prior_seconds: float = 0.0
    seconds: float = 0.0
    best_value: float | None = None

    def info(self, config: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "history": self.history,
            "seconds": self.seconds,
            "best_value": self.best_value,
            "config": config,
        }


def _resume(
    state: TrainingState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    config: dict[str, Any] | None,
) -> _RunState | None:
    loaded = state.load()
    if loaded is None:
        return None
    epoch, states, info = loaded
    if config is not None and info.get("config") not in (None, config):
        raise CheckpointError(
            f"{state.directory} holds a run with a different config: use a new output directory "
            "or delete that one to retrain"
        )
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in states["model"].items()})
    optimizer.load_state_dict(states["optimizer"])
    if scheduler is not None and "scheduler" in states:
        scheduler.load_state_dict(states["scheduler"])
    _set_rng_state(states["rng"])
    return _RunState(
        history=info["history"],
        start=epoch,
        prior_seconds=info["seconds"],
        best_value=info.get("best_value"),
    )


def _rng_state() -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _format(metrics: dict[str, float]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )
