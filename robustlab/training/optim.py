"""Optimizer and learning-rate schedule construction from plain arguments."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robustlab.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "onecycle", "cyclic", "piecewise")
# the triangular schedule of fast adversarial training peaks at 2/5 of training (Wong et al.)
CYCLE_PEAK = 0.4


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    lr: float = 0.05,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = True,
) -> torch.optim.Optimizer:
    """SGD (Nesterov by default), Adam or AdamW.

    Weight decay is not applied to BatchNorm and bias parameters: decaying them only fights the
    normalisation and, for distillation at high temperature, shrinks the logits it needs.
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    epochs: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float = 0.0,
    milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
    epoch_milestones: Sequence[int] = (),
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration schedule as a multiplier of the base learning rate.

    ``cyclic`` is the triangular schedule of fast adversarial training (Wong et al. 2020):
    linear from 0 up to the base lr at 2/5 of training, then linear down to zero, each step at
    the lr of the point of training it ends at (as their code interpolates it, so the first
    step already learns); ``onecycle`` is the same triangle taken where each step starts.
    ``step`` multiplies by ``gamma`` at the given fractions of training; ``piecewise`` multiplies
    by ``gamma`` from each of ``epoch_milestones`` on (0-based epochs: PGD-AT's 0.1 -> 0.01 ->
    0.001 at epochs 100 and 150 of 200, Rice et al. 2020), and a milestone at or past
    ``epochs`` never fires. A linear warm-up can precede any of them.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown lr schedule {name!r}: use one of {', '.join(SCHEDULES)}")
    epoch_milestones = _check_milestones(name, epoch_milestones)
    total = max(1, epochs * steps_per_epoch)
    warmup = int(warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "piecewise":
            epoch = step // max(1, steps_per_epoch)
            return gamma ** sum(epoch >= m for m in epoch_milestones)
        ends = name == "cyclic"  # cyclic: where the step ends (Wong et al.'s interpolation)
        progress = min(1.0, (step + ends - warmup) / max(1, total - warmup))
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "step":
            return gamma ** sum(progress >= m for m in milestones)
        if name in ("onecycle", "cyclic"):
            if progress < CYCLE_PEAK:
                return progress / CYCLE_PEAK
            return max(0.0, (1.0 - progress) / (1.0 - CYCLE_PEAK))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _check_milestones(name: str, epoch_milestones: Sequence[int]) -> tuple[int, ...]:
    """Epoch milestones: ascending positive integers, given exactly when the schedule is
    ``piecewise`` (anywhere else they would be ignored)."""
    values = tuple(int(m) for m in epoch_milestones)
    if name != "piecewise":
        if values:
            raise ConfigError(
                f"lr milestones {list(values)} only apply to the piecewise schedule, not "
                f"{name!r}: set the scheduler to piecewise or drop the milestones"
            )
        return values
    if not values or any(m < 1 for m in values) or list(values) != sorted(set(values)):
        raise ConfigError(
            f"the piecewise lr schedule needs ascending epoch milestones >= 1, got {list(values)}"
            " (e.g. train.milestones=[100,150])"
        )
    return values
