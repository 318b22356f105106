"""What the training stage reports: cost, epochs and warnings, as a typed result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainingSummary:
    """One trained (or reused) model: what it cost, how many epochs, which epoch was kept.

    ``teacher``: the distillation teacher's own summary; its cost is part of the defense's.
    ``history``: the per-epoch metrics of the run (not written to results.json).
    """

    epochs: int
    train_seconds: float
    grad_evals_per_example: float
    best_epoch: int | None = None
    reused_checkpoint: bool = False
    teacher: TrainingSummary | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # a monitored run's best and last epoch (robustlab.training.robust_monitor.early_stopping)
    early_stopping: dict[str, Any] | None = None
    world_size: int = 1  # the processes that trained it (DDP); a reused checkpoint's trainer's

    def to_results(self) -> dict[str, Any]:
        """``training_cost`` (teacher included), the training warnings and, for a run that kept
        its best epoch, ``early_stopping`` (best and last epoch)."""
        teacher = self.teacher
        early = {"early_stopping": self.early_stopping} if self.early_stopping else {}
        return {
            "training_cost": {
                "grad_evals_per_example": self.grad_evals_per_example
                + (teacher.grad_evals_per_example if teacher else 0),
                "train_seconds": self.train_seconds + (teacher.train_seconds if teacher else 0),
                "epochs": self.epochs,
                "best_epoch": self.best_epoch,
                "reused_checkpoint": self.reused_checkpoint,
                "world_size": self.world_size,
            },
            "warnings": list(self.warnings),
        } | early

    def to_json(self) -> dict[str, Any]:
        """The summary as stored beside a checkpoint's weights (teacher excluded)."""
        return {
            "train_seconds": self.train_seconds,
            "grad_evals_per_example": self.grad_evals_per_example,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "warnings": list(self.warnings),
            "early_stopping": self.early_stopping,
            "world_size": self.world_size,
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any], reused: bool) -> TrainingSummary:
        """Read back what `to_json` stored (checkpoints written before it too)."""
        return cls(
            epochs=int(stored.get("epochs") or 0),
            train_seconds=float(stored.get("train_seconds") or 0.0),
            grad_evals_per_example=float(stored.get("grad_evals_per_example") or 0.0),
            best_epoch=stored.get("best_epoch"),
            reused_checkpoint=reused,
            history=list(stored.get("history") or []),
            warnings=list(stored.get("warnings") or []),
            early_stopping=stored.get("early_stopping"),
            world_size=int(stored.get("world_size") or 1),
        )
