"""Gaussian data augmentation for randomized smoothing (Cohen, Rosenfeld & Kolter 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, is only as
good as the base classifier ``f`` is under that noise, so ``f`` is trained on noisy inputs at the
sigma it will be certified with. As in the paper the noise is not clipped to [0, 1]: the
certificate is about the Gaussian measure on the whole space, and training sees what
certification will feed the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import ConfigError
from robustlab.training.global_batch import draw_rows
from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.registry import Defense, bounded, register_defense


class GaussianNoise(Objective):
    """Cross-entropy on ``x + sigma * N(0, I)`` (one fresh draw per example and step).

    The noise comes from torch's global generator, which the fit loop checkpoints, so a resumed
    run draws the same noise; under DDP it is drawn for the global batch, so every example
    gets the noise it gets in one process. The returned logits are the noisy ones (training
    accuracy under noise); ``grad_evals`` is one pass per example.
    """

    name = "gaussian_noise"

    def __init__(self, sigma: float) -> None:
        if not (sigma >= 0 and math.isfinite(sigma)):
            raise ConfigError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        noisy = images + self.sigma * draw_rows(images, torch.randn_like)
        logits = model(noisy)
        loss = F.cross_entropy(logits, labels)
        return ObjectiveStep(loss=loss, logits=logits.detach(), grad_evals=images.shape[0])

    def describe(self) -> dict:
        return {"name": self.name, "sigma": self.sigma}


@register_defense("gaussian_noise")
@dataclass
class GaussianNoiseDefense(Defense):
    """Gaussian data augmentation at ``sigma``: the base classifier of randomized smoothing."""

    sigma: float = bounded(0.25, 0.0)

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        return GaussianNoise(sigma=self.sigma)

    def noise_sigma(self) -> float:
        return self.sigma
