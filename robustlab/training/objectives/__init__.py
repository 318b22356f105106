"""Training objectives: each defense is one objective for the shared fit loop."""

from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.standard import CrossEntropy

__all__ = ["Objective", "ObjectiveStep", "CrossEntropy"]
