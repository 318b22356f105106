"""A detector-aware (white-box) adaptive attack on any ``Detector``.

The attacker knows the classifier and the fitted detector, and runs Linf PGD on
``classifier_loss(x') - weight * detector.differentiable_score(x')``: it leaves the true class
while keeping the ensemble score low, in the spirit of Carlini & Wagner (2017), "Adversarial
Examples Are Not Easily Detected". For Mahalanobis that score is the ensemble at noise 0, for
KD+BU the density and the Monte-Carlo-dropout uncertainty (fresh dropout masks at every step,
i.e. expectation over transformation), for LID the estimates against the reference batch.
The loss follows the robustlab attack-loss contract, so the native PGD engine runs it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks.losses import margin_loss
from robustlab.detection.base import Detector
from robustlab.errors import ConfigError

CLASSIFIER_LOSSES = ("ce", "margin")


class AdaptiveDetectorLoss:
    """Per-example loss ``loss(model, adv_images, images, labels) -> Tensor[N]`` to maximise.

    ``classifier_loss``: ``"ce"`` (cross-entropy of the true class) or ``"margin"``
    (``max_{j != y} z_j - z_y`` capped at ``kappa``, so that once an example is misclassified
    with margin ``kappa`` only the detector term still pulls on it). ``weight`` scales the
    detector term; 0 gives a plain (detector-unaware) attack. The capped margin is the
    default because an uncapped cross-entropy keeps pulling misclassified examples deeper
    into the wrong class, where the detector sees them best.
    """

    def __init__(
        self,
        detector: Detector,
        weight: float = 1.0,
        classifier_loss: str = "margin",
        kappa: float = 0.0,
    ):
        if classifier_loss not in CLASSIFIER_LOSSES:
            valid = ", ".join(CLASSIFIER_LOSSES)
            raise ConfigError(f"classifier_loss must be one of {valid}, got {classifier_loss!r}")
        if weight < 0:
            raise ConfigError(f"the detector weight must be >= 0, got {weight!r}")
        self.detector = detector
        self.weight = float(weight)
        self.classifier_loss = classifier_loss
        self.kappa = float(kappa)

    def __call__(
        self, model: nn.Module, adv_images: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        loss = self._classifier_term(model(adv_images), labels)
        if self.weight == 0.0:
            return loss
        return loss - self.weight * self.detector.differentiable_score(adv_images)

    def _classifier_term(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.classifier_loss == "ce":
            return F.cross_entropy(logits, labels, reduction="none")
        return margin_loss(logits, labels).clamp(max=self.kappa)

    def __repr__(self) -> str:
        return (
            f"AdaptiveDetectorLoss(weight={self.weight:g}, classifier_loss={self.classifier_loss})"
        )


def adaptive_attack(
    model: nn.Module,
    detector: Detector,
    eps: float,
    *,
    alpha: float,
    steps: int,
    weight: float = 1.0,
    classifier_loss: str = "margin",
):
    """Linf PGD (robustlab's engine, no early stop) on ``AdaptiveDetectorLoss``.

    Returns an attack callable ``attack(images, labels) -> adv_images``. The engine is imported
    here so that the detector works without the attack package.
    """
    from robustlab.attacks import PGD

    loss = AdaptiveDetectorLoss(detector, weight=weight, classifier_loss=classifier_loss)
    return PGD(model, eps=eps, alpha=alpha, steps=steps, loss=loss, early_stop=False)
