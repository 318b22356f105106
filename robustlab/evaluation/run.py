"""One process's evaluation under way, as a typed object: the settings that change a curve or
the worst case (what a resumed run must share), and the run itself (model, judge, this
process's examples, device, state), opened by `open_run`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustlab.attacks.catalogue import AttackSpec
from robustlab.attacks.row_random import example_seeds
from robustlab.evaluation.fingerprint import evaluation_fingerprint
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.resume_state import EvaluationState, open_state
from robustlab.evaluation.sharded import shard_examples
from robustlab.models.acceleration import crafting_model


@dataclass(frozen=True)
class EvaluationSettings:
    """Every setting that changes a curve or the worst case (what a resumed run must share)."""

    attacks: dict[str, AttackSpec]
    eps_grid: list[float]
    batch_size: int
    schedule: str
    continuation_steps: int | None
    suite: str
    seed: int
    eot_iter: int
    draws: int
    crafting_dtype: torch.dtype | None
    kept: list[tuple[str, float]]

    def fingerprint(self) -> dict:
        """The settings as JSON-able values, for the state's fingerprint."""
        return {
            "eps_grid": self.eps_grid,
            "batch_size": self.batch_size,
            "schedule": self.schedule,
            "continuation_steps": self.continuation_steps,
            "suite": self.suite,
            "seed": self.seed,
            "keep": sorted(self.kept),
            "attacks": {k: [s.name, s.kwargs, s.eps] for k, s in self.attacks.items()},
            "crafting_dtype": repr(self.crafting_dtype),
            "eot_iter": repr(self.eot_iter),
            "draws": repr(self.draws),
        }


@dataclass
class EvaluationRun:
    """One process's evaluation under way: the model (attacks craft on ``crafting``), the judge
    of every verdict, this process's examples (``ids``: their indices in the whole set) with
    the judge's clean verdicts, the device, the settings and the resumable state."""

    model: nn.Module
    crafting: nn.Module
    judge: Judge
    images: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor
    correct: torch.Tensor
    device: torch.device
    settings: EvaluationSettings
    state: EvaluationState

    @property
    def row_seeds(self) -> torch.Tensor:
        """One seed per row, from the settings' seed and the row's index in the whole set."""
        return example_seeds(self.settings.seed, self.ids)


def open_run(model, images, labels, settings, *, device, sharded, state_path, resume):
    """This process's `EvaluationRun`: its shard of the examples, their clean verdicts and the
    state (continued from ``state_path`` when it holds this very evaluation)."""
    shard, shard_labels, ids = shard_examples(images, labels, sharded)
    fingerprint = {}
    if state_path:
        config = settings.fingerprint()
        fingerprint = evaluation_fingerprint(model, shard, shard_labels, ids, config)
    state = open_state(state_path, fingerprint, resume)
    judge = Judge(model, settings.draws)
    correct = judge.predict(shard, settings.batch_size, device) == shard_labels
    return EvaluationRun(
        model=model,
        crafting=crafting_model(model, settings.crafting_dtype),
        judge=judge,
        images=shard,
        labels=shard_labels,
        ids=ids,
        correct=correct,
        device=device,
        settings=settings,
        state=state,
    )


__all__ = ["EvaluationRun", "EvaluationSettings", "open_run"]
