"""Optimizer and learning-rate schedule construction from plain arguments."""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlab.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "onecycle")


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    lr: float = 0.05,
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
    warmup_epochs: float = 0.0,
    milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration schedule as a multiplier of the base learning rate.

    ``onecycle`` is the triangular (cyclic) schedule of fast adversarial training: linear up to
    the peak at 40% of training, then linear down to zero. ``step`` multiplies by ``gamma`` at
    the given fractions of training. A linear warm-up can precede any of them.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown lr schedule {name!r}: use one of {', '.join(SCHEDULES)}")
    total = max(1, epochs * steps_per_epoch)
    warmup = int(warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "step":
            return gamma ** sum(progress >= m for m in milestones)
        if name == "onecycle":
            peak = 0.4
            return progress / peak if progress < peak else max(0.0, (1.0 - progress) / (1.0 - peak))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
