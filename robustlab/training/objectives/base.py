"""The objective protocol: what one training step optimises.

Every defense is an objective plugged into the ONE fit loop (``robustlab.training.fit``), so
standard, adversarial and distillation training share batching, logging and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ObjectiveStep:
    """The result of one objective evaluation on a batch.

    ``logits`` are the ones the training accuracy is measured on (the adversarial logits for
    adversarial training); ``grad_evals`` counts per-example forward+backward passes, crafting
    included, so the cost of defenses can be compared.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    grad_evals: int


class Objective:
    """Base class: subclasses implement ``__call__``; the hooks are optional."""

    name = "objective"

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called before every epoch (0-based), e.g. for an eps warm-up schedule."""

    def describe(self) -> dict:
        """Plain settings recorded next to the results."""
        return {"name": self.name}
