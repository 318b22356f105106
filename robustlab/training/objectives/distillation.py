"""Defensive distillation (Papernot et al. 2016, "Distillation as a Defense to Adversarial
Perturbations against Deep Neural Networks").

1. A teacher is trained with ``CrossEntropy(temperature=T)`` (softmax of logits / T).
2. A student of the same architecture is trained on the teacher's soft labels at the same T.
3. The student is deployed at T = 1, i.e. its raw logits are used: they are about T times larger
   than those the training softmax saw, so the softmax saturates and its input gradients vanish.
   That is gradient masking, not robustness (Carlini & Wagner 2016): evaluate it with the
   margin loss or CW, not only with cross-entropy PGD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import ConfigError
from robustlab.models.inference import model_context
from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.registry import Defense, bounded, register_defense
from robustlab.training.objectives.standard import CrossEntropy


@torch.no_grad()
def soft_labels(teacher: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's class probabilities ``softmax(teacher(x) / T)``, shape (N, classes).

    Computed in eval mode (BatchNorm running statistics, no dropout: the labels of an example
    do not depend on its batch) and without gradients; the teacher's mode is restored.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    with model_context(teacher, "eval"):
        logits = teacher(images)
    return F.softmax(logits.float() / temperature, dim=1)


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``-sum_k targets_k * log softmax(logits / T)_k``, averaged over the batch."""
    log_probs = F.log_softmax(logits.float() / temperature, dim=1)
    return -(targets * log_probs).sum(dim=1).mean()


class Distillation(Objective):
    """Train a student on a teacher's soft labels at temperature ``temperature``.

    ``loss = -mean_i sum_k p_T(teacher)(x_i)_k * log softmax(student(x_i) / T)_k``.

    ``scale_by_temperature=True`` (default) multiplies the loss by T, so the gradient w.r.t. the
    logits is ``q_T - p_T`` (student minus teacher probabilities), the scale of T = 1 training.
    Without it every gradient shrinks by 1/T and, at a fixed learning rate and epoch budget, a
    large temperature underfits badly (on digits, T = 20 for 8 epochs: ~21% clean accuracy
    unscaled against ~98% scaled). The teacher's ``CrossEntropy`` takes the same option.

    ``grad_evals`` counts the student's forward+backward only (one per example): the teacher's
    forward pass computes no gradient and is a fixed cost of the labels, not of the defense.
    The returned logits are the student's raw (T = 1, deployment) logits.
    """

    name = "distillation"

    def __init__(
        self, teacher: nn.Module, temperature: float, scale_by_temperature: bool = True
    ) -> None:
        if teacher is None:
            raise ConfigError("distillation needs a trained teacher model")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.teacher = teacher
        self.temperature = float(temperature)
        self.scale_by_temperature = bool(scale_by_temperature)

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        targets = soft_labels(self.teacher, images, self.temperature)
        logits = model(images)
        loss = soft_cross_entropy(logits, targets, self.temperature)
        if self.scale_by_temperature:
            loss = loss * self.temperature
        return ObjectiveStep(loss=loss, logits=logits.detach(), grad_evals=images.shape[0])

    def describe(self) -> dict:
        return {
            "name": self.name,
            "temperature": self.temperature,
            "scale_by_temperature": self.scale_by_temperature,
        }


@register_defense("distillation")
@dataclass
class DefensiveDistillation(Defense):
    """A teacher trained at temperature ``T``, then a student on its soft labels at ``T``."""

    temperature: float = bounded(20.0, 0.0, exclusive_low=True)
    teacher_epochs: int | None = bounded(None, 1)  # None: train.epochs

    def teacher(self) -> tuple[Objective, int | None]:
        """Cross-entropy at ``T`` with gradients at the T = 1 scale, for ``teacher_epochs``."""
        return CrossEntropy(self.temperature, scale_by_temperature=True), self.teacher_epochs

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        return Distillation(teacher=teacher, temperature=self.temperature)
