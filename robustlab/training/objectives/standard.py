"""Standard (clean) cross-entropy training, optionally at a softmax temperature."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import ConfigError
from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.registry import Defense, register_defense


class CrossEntropy(Objective):
    """Cross-entropy on clean inputs: ``CE(softmax(f(x) / T), y)``.

    ``temperature`` > 1 is how a defensive-distillation teacher is trained (Papernot et al. 2016);
    ``scale_by_temperature`` then multiplies the loss by T so that the gradient w.r.t. the logits
    keeps the scale of T = 1 training instead of shrinking by 1/T (which makes a large-T teacher
    underfit at an ordinary learning rate).
    """

    name = "standard"

    def __init__(
        self,
        temperature: float = 1.0,
        label_smoothing: float = 0.0,
        scale_by_temperature: bool = False,
    ) -> None:
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.label_smoothing = label_smoothing
        self.scale_by_temperature = scale_by_temperature

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        logits = model(images)
        loss = F.cross_entropy(
            logits / self.temperature, labels, label_smoothing=self.label_smoothing
        )
        if self.scale_by_temperature:
            loss = loss * self.temperature
        return ObjectiveStep(loss=loss, logits=logits.detach(), grad_evals=images.shape[0])

    def describe(self) -> dict:
        return {
            "name": self.name,
            "temperature": self.temperature,
            "scale_by_temperature": self.scale_by_temperature,
        }


@register_defense("none")
@dataclass
class StandardTraining(Defense):
    """No defense: cross-entropy on clean inputs."""

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        return CrossEntropy()
