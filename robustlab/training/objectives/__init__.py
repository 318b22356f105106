"""Training objectives: each defense is one objective for the shared fit loop, registered by
name with its options (``create_defense("pgd_at", eps=0.1)``); importing a defense's module
registers it."""

from robustlab.training.objectives.adversarial import AdversarialTraining, FastAdversarialTraining
from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.distillation import Distillation, soft_labels
from robustlab.training.objectives.noise import GaussianNoise
from robustlab.training.objectives.registry import (
    Defense,
    HeldOutCheck,
    bounded,
    create_defense,
    defense_options,
    list_defenses,
    one_of,
    register_defense,
)
from robustlab.training.objectives.standard import CrossEntropy
from robustlab.training.objectives.trades import TRADES

__all__ = [
    "TRADES",
    "AdversarialTraining",
    "CrossEntropy",
    "Defense",
    "Distillation",
    "FastAdversarialTraining",
    "GaussianNoise",
    "HeldOutCheck",
    "Objective",
    "ObjectiveStep",
    "bounded",
    "create_defense",
    "defense_options",
    "list_defenses",
    "one_of",
    "register_defense",
    "soft_labels",
]
