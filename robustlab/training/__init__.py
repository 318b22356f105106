"""Training: the one fit loop, its objectives, optimizers and checkpoints (no Hydra/W&B)."""

from robustlab.training.checkpoint import (
    TrainingState,
    finished_weights,
    load_weights,
    save_weights,
)
from robustlab.training.fit import FitResult, Monitor, fit
from robustlab.training.objectives import (
    CrossEntropy,
    Defense,
    Objective,
    ObjectiveStep,
    create_defense,
    list_defenses,
    register_defense,
)
from robustlab.training.optim import build_optimizer, build_scheduler
from robustlab.training.summary import TrainingSummary

__all__ = [
    "CrossEntropy",
    "Defense",
    "FitResult",
    "Monitor",
    "Objective",
    "ObjectiveStep",
    "TrainingState",
    "TrainingSummary",
    "build_optimizer",
    "build_scheduler",
    "create_defense",
    "finished_weights",
    "fit",
    "list_defenses",
    "load_weights",
    "register_defense",
    "save_weights",
]
