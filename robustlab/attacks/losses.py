"""Attack objectives: per-example losses that an attack maximises.

A loss is either a name (``"ce"``, ``"margin"``) or a callable
``loss(model, adv_images, images, labels) -> Tensor[N]``. Named losses are computed from logits
so the same forward pass also tells whether the example is already fooled.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import ConfigError

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LossSpec = str | LossFn
NAMED_LOSSES = ("ce", "margin")


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner logit margin ``max_{j != y} z_j - z_y`` per example (> 0 means fooled)."""
    true_logit = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.amax(dim=1) - true_logit


def validate_loss(loss: LossSpec) -> LossSpec:
    """Return ``loss`` (lower-cased when named) or raise ConfigError."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss.lower() in NAMED_LOSSES:
        return loss.lower()
    raise ConfigError(
        f"unknown attack loss {loss!r}: use one of {', '.join(NAMED_LOSSES)} or a callable"
    )


def batch_objective(
    loss: str, logits: torch.Tensor, labels: torch.Tensor, targeted: bool
) -> torch.Tensor:
    """Scalar whose input gradient the attack ascends.

    Cross-entropy uses the batch mean exactly as torchattacks does, so that sign steps agree
    bit for bit; the scale of the scalar never matters to sign or normalised steps.
    """
    if loss == "ce":
        value = F.cross_entropy(logits, labels)
    else:
        value = margin_loss(logits, labels).sum()
    return -value if targeted else value


def per_example_objective(
    loss: str, logits: torch.Tensor, labels: torch.Tensor, targeted: bool
) -> torch.Tensor:
    """Per-example value of the quantity the attack maximises (used to rank restarts)."""
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="none")
    else:
        value = margin_loss(logits, labels)
    return -value if targeted else value
