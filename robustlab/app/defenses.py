"""The defense of a config as a training objective (plus the callbacks it needs)."""

from __future__ import annotations

from collections.abc import Callable

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
    GaussianNoise,
    Objective,
)
from robustlab.training.robust_monitor import HeldOutRobustness


def _adversarial(cfg: DictConfig, fast: bool) -> Objective:
    d = cfg.defense
    shared = dict(
        eps=d.eps,
        alpha=d.step_size * d.eps,
        random_start=d.random_start,
        mix=d.mix,
        model_mode=d.model_mode,
        warmup_epochs=d.eps_warmup_epochs,
    )
    return (
        FastAdversarialTraining(**shared) if fast else AdversarialTraining(steps=d.steps, **shared)
    )


# defense name -> its objective; the schema's choices are exactly these keys
OBJECTIVES: dict[str, Callable[[DictConfig, nn.Module | None], Objective]] = {
    "none": lambda cfg, teacher: CrossEntropy(),
    "pgd_at": lambda cfg, teacher: _adversarial(cfg, fast=False),
    "fast_at": lambda cfg, teacher: _adversarial(cfg, fast=True),
    "trades": lambda cfg, teacher: TRADES(
        eps=cfg.defense.eps,
        alpha=cfg.defense.step_size * cfg.defense.eps,
        steps=cfg.defense.steps,
        beta=cfg.defense.beta,
    ),
    "distillation": lambda cfg, teacher: Distillation(
        teacher=teacher, temperature=cfg.defense.temperature
    ),
    "gaussian_noise": lambda cfg, teacher: GaussianNoise(sigma=cfg.defense.sigma),
}


def build_objective(cfg: DictConfig, teacher: nn.Module | None = None) -> Objective:
    """The training objective of ``cfg.defense`` (a distillation student needs its teacher)."""
    return OBJECTIVES[cfg.defense.name](cfg, teacher)


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
