"""Training: the one fit loop, its objectives, optimizers and checkpoints (no Hydra/W&B).

Each defense is an objective for ``fit`` (``AdversarialTraining``, ``TRADES``, ...), built by
name with ``create_defense``; ``HeldOutRobustness`` is the epoch callback that measures PGD
accuracy on a held-out batch and keeps the best epoch.
"""

from robustlab.training.checkpoint import (
    TrainingState,
    finished_weights,
    load_weights,
    save_weights,
)
from robustlab.training.fit import FitResult, Monitor, fit
from robustlab.training.objectives import (
    TRADES,
    AdversarialTraining,
    CrossEntropy,
    Defense,
    Distillation,
    FastAdversarialTraining,
    GaussianNoise,
    Objective,
    ObjectiveStep,
    create_defense,
    list_defenses,
    register_defense,
)
from robustlab.training.optim import build_optimizer, build_scheduler
from robustlab.training.robust_monitor import HeldOutRobustness
from robustlab.training.summary import TrainingSummary

__all__ = [
    "TRADES",
    "AdversarialTraining",
    "CrossEntropy",
    "Defense",
    "Distillation",
    "FastAdversarialTraining",
    "FitResult",
    "GaussianNoise",
    "HeldOutRobustness",
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
