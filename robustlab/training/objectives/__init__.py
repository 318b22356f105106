"""Training objectives: each defense is one objective for the shared fit loop."""

from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.standard import CrossEntropy

__all__ = ["Objective", "ObjectiveStep", "CrossEntropy"]
from robustlab.training.objectives.adversarial import (  # noqa: E402
    AdversarialTraining,
    FastAdversarialTraining,
)
from robustlab.training.objectives.distillation import Distillation, soft_labels  # noqa: E402
from robustlab.training.objectives.noise import GaussianNoise  # noqa: E402
from robustlab.training.objectives.trades import TRADES  # noqa: E402

__all__ += [
    "AdversarialTraining",
    "Distillation",
    "FastAdversarialTraining",
    "GaussianNoise",
    "TRADES",
    "soft_labels",
]
