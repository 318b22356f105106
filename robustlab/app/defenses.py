"""The defense of a config as a training objective (plus the callbacks it needs)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle
from robustlab.training import CrossEntropy, Monitor
from robustlab.training.fit import EpochCallback
from robustlab.training.objectives import (
    TRADES,
    AdversarialTraining,
    Distillation,
    FastAdversarialTraining,
    Objective,
)
from robustlab.training.robust_monitor import HeldOutRobustness


def build_objective(cfg: DictConfig, teacher: nn.Module | None = None) -> Objective:
    """The training objective of ``cfg.defense`` (a distillation student needs its teacher)."""
    d = cfg.defense
    alpha = d.step_size * d.eps
    if d.name == "none":
        return CrossEntropy()
    if d.name in ("pgd_at", "fast_at"):
        shared = dict(
            eps=d.eps,
            alpha=alpha,
            random_start=d.random_start,
            mix=d.mix,
            model_mode=d.model_mode,
            warmup_epochs=d.eps_warmup_epochs,
        )
        if d.name == "fast_at":
            return FastAdversarialTraining(**shared)
        return AdversarialTraining(steps=d.steps, **shared)
    if d.name == "trades":
        return TRADES(eps=d.eps, alpha=alpha, steps=d.steps, beta=d.beta)
    if d.name == "distillation":
        return Distillation(teacher=teacher, temperature=d.temperature)
    raise ValueError(f"unknown defense {d.name}")


def teacher_objective(cfg: DictConfig) -> Objective:
    """A distillation teacher: cross-entropy at temperature T, gradients at the T = 1 scale."""
    return CrossEntropy(temperature=cfg.defense.temperature, scale_by_temperature=True)


def heldout_monitor(
    cfg: DictConfig, bundle: DataBundle, device: torch.device
) -> tuple[list[EpochCallback], Monitor | None]:
    """PGD accuracy on a fixed validation batch each epoch, and keeping the best epoch by it.

    Fast adversarial training can overfit catastrophically within an epoch (Wong et al. 2020);
    the batch comes from the validation split, never from the test set.
    """
    if not cfg.defense.monitor_heldout:
        return [], None
    val_x, val_y = bundle.val
    n, eps = cfg.defense.heldout_size, cfg.defense.eps
    monitor = HeldOutRobustness(
        val_x[:n].to(device),
        val_y[:n].to(device),
        eps=eps,
        alpha=eps / 4,
        steps=cfg.defense.heldout_steps,
        seed=cfg.seed,
    )
    return [monitor], Monitor("heldout_pgd_accuracy", "max")
