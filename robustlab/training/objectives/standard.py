"""Standard (clean) cross-entropy training, optionally at a softmax temperature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.training.objectives.base import Objective, ObjectiveStep


class CrossEntropy(Objective):
    """Cross-entropy on clean inputs: ``CE(softmax(f(x) / T), y)``.

    ``temperature`` > 1 is how a defensive-distillation teacher is trained (Papernot et al. 2016).
    """

    name = "standard"

    def __init__(self, temperature: float = 1.0, label_smoothing: float = 0.0) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.label_smoothing = label_smoothing

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        logits = model(images)
        loss = F.cross_entropy(
            logits / self.temperature, labels, label_smoothing=self.label_smoothing
        )
        return ObjectiveStep(loss=loss, logits=logits.detach(), grad_evals=images.shape[0])

    def describe(self) -> dict:
        return {"name": self.name, "temperature": self.temperature}
