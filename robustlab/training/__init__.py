"""Training: the one fit loop, its objectives, optimizers and checkpoints (no Hydra/W&B)."""

from robustlab.training.checkpoint import (
    TrainingState,
    finished_weights,
    load_weights,
    save_weights,
)
from robustlab.training.fit import FitResult, Monitor, fit
from robustlab.training.objectives import CrossEntropy, Objective, ObjectiveStep
from robustlab.training.optim import build_optimizer, build_scheduler
from robustlab.training.summary import TrainingSummary

__all__ = [
    "CrossEntropy",
    "FitResult",
    "Monitor",
    "Objective",
    "ObjectiveStep",
    "TrainingState",
    "TrainingSummary",
    "build_optimizer",
    "build_scheduler",
    "finished_weights",
    "fit",
    "load_weights",
    "save_weights",
]
