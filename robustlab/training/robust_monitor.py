"""Watch robustness during training: PGD accuracy on a fixed held-out batch every epoch.

Fast adversarial training can overfit catastrophically (Wong, Rice & Kolter 2020): within a
single epoch the PGD accuracy collapses to about 0 while the FGSM training accuracy keeps
rising. Measuring PGD accuracy on held-out data each epoch, keeping the best epoch with
``fit(..., monitor=Monitor("heldout_pgd_accuracy", "max"))`` and warning with
`catastrophic_overfitting` is their remedy (early stopping on PGD accuracy).

PGD adversarial training overfits too, slowly (Rice, Wong & Kolter 2020): past the first
learning-rate decay the test robust accuracy falls while the training one rises, and the best
epoch beats the last by several points. `early_stopping` reports both epochs and
`keep_last_weights` keeps the last epoch's weights beside the best ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.attacks.pgd import PGD
from robustlab.errors import InputError
from robustlab.evaluation import robust_accuracy
from robustlab.fileio import write_tensors_atomic
from robustlab.training.checkpoint import TrainingState

HELDOUT_PGD = "heldout_pgd_accuracy"
HELDOUT_CLEAN = "heldout_clean_accuracy"


class HeldOutRobustness:
    """Epoch callback: clean and PGD accuracy of ``model`` on one fixed held-out batch.

    The batch should come from a validation split, never from the test set. The PGD attack is
    the native engine (eval mode, early stopping, CE loss); robust accuracy counts the examples
    that are correct both clean and under attack, so it never exceeds the clean accuracy. The
    attack's random start draws from a private, seeded RNG stream: the measurement is the same
    for the same weights, and the training run's own random numbers are left undisturbed.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        eps: float,
        *,
        alpha: float,
        steps: int = 10,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        if len(images) == 0 or len(images) != len(labels):
            raise InputError("the held-out batch needs as many labels as images, at least one")
        self.images, self.labels = images.detach(), labels.detach()
        self.eps, self.alpha, self.steps = float(eps), float(alpha), int(steps)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, float]:
        """Measure the model now; returns the held-out clean and PGD accuracies in [0, 1]."""
        clean, robust = self.measure(model)
        return {HELDOUT_PGD: robust, HELDOUT_CLEAN: clean}

    def measure(self, model: nn.Module) -> tuple[float, float]:
        """(clean accuracy, PGD accuracy) on the held-out batch, by the attacks' evaluator."""

        def attack(eps: float) -> PGD:
            return PGD(model, eps=eps, alpha=self.alpha, steps=self.steps)

        # a private RNG stream: measuring must not shift the training run's random numbers
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            curve = robust_accuracy(
                model, self.images, self.labels, attack, [self.eps], batch_size=self.batch_size
            )
        return curve.clean_accuracy, curve.points[0].accuracy


def catastrophic_overfitting(
    history: Sequence[dict[str, float]], metric: str = HELDOUT_PGD, drop: float = 0.2
) -> str | None:
    """A warning if ``metric`` fell by more than ``drop`` (absolute) from its best, else None.

    ``history`` is ``fit``'s per-epoch list; epochs without ``metric`` are skipped. The largest
    fall from a running best to any later epoch is reported.
    """
    best, best_epoch, worst = None, None, None
    for index, record in enumerate(history):
        value = record.get(metric)
        if value is None:
            continue
        epoch = int(record.get("epoch", index + 1))
        if best is None or value > best:
            best, best_epoch = value, epoch
        elif worst is None or best - value > worst[0]:
            worst = (best - value, best, best_epoch, value, epoch)
    if worst is None or worst[0] <= drop:
        return None
    _, peak, peak_epoch, low, low_epoch = worst
    return (
        f"catastrophic overfitting suspected: {metric} fell from {peak:.3f} (epoch {peak_epoch}) "
        f"to {low:.3f} (epoch {low_epoch}); keep the best epoch's weights (monitor {metric}), "
        "or lower the step size / eps, or use PGD adversarial training"
    )


LAST_WEIGHTS = "last.safetensors"


@dataclass
class EarlyStopping:
    """Best and last epoch of a monitored run (Rice et al. 2020 report both: the gap between
    them is robust overfitting). ``best``/``last``: the epoch and its held-out metrics."""

    metric: str
    best: dict[str, float]
    last: dict[str, float]
    last_weights: str | None = None

    def to_results(self) -> dict[str, Any]:
        """The ``early_stopping`` block of results.json."""
        return {
            "metric": self.metric,
            "best": dict(self.best),
            "last": dict(self.last),
            "last_weights": self.last_weights,
        }

    @classmethod
    def from_results(cls, stored: dict[str, Any] | None) -> EarlyStopping | None:
        """Read back `to_results` (None stays None)."""
        if not stored:
            return None
        return cls(stored["metric"], stored["best"], stored["last"], stored.get("last_weights"))


def early_stopping(
    history: Sequence[dict[str, float]], metric: str = HELDOUT_PGD
) -> EarlyStopping | None:
    """The best epoch by ``metric`` (the first of equals, as ``fit``'s monitor keeps it) and the
    last epoch, each with the held-out metrics it recorded; None when no epoch has ``metric``."""
    measured = [record for record in history if metric in record]
    if not measured:
        return None
    best = max(measured, key=lambda record: record[metric])  # max keeps the first of equals
    keys = ("epoch", metric, *(k for k in (HELDOUT_CLEAN, HELDOUT_PGD) if k != metric))
    best, last = ({k: record[k] for k in keys if k in record} for record in (best, measured[-1]))
    return EarlyStopping(metric, best, last)


def keep_last_weights(directory: str | Path) -> Path | None:
    """Write the last epoch's model weights to ``directory/last.safetensors`` (atomically),
    beside the kept best ``model.safetensors``, from the run's last resume point; None when
    the run left no resume point."""
    loaded = TrainingState(directory).load()
    if loaded is None:
        return None
    _, states, _ = loaded
    path = Path(directory) / LAST_WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tensors_atomic(path, states["model"])
    return path
