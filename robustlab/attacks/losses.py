"""Attack objectives: per-example losses that an attack maximises.

A loss is either a name (``"ce"``, ``"margin"``, ``"dlr"``) or a callable
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
NAMED_LOSSES = ("ce", "margin", "dlr")


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner logit margin ``max_{j != y} z_j - z_y`` per example (> 0 means fooled)."""
    true_logit = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.amax(dim=1) - true_logit


# Below this cross-entropy, p_y is within 1e-6 of 1: float32 (ulp 6e-8 at 1) rounds the
# true-class term p_y - 1 of the CE gradient by more than 5%, and to 0 below 6e-8.
SATURATED_CE = 1e-6


def cross_entropy_ascent(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in its log-odds form ``log((1 - p_y) / p_y) = LSE_{j != y} z_j - z_y``.

    A strictly increasing function of the cross-entropy (``log(exp(CE) - 1)``), so it has the
    same maximisers and, per example, its gradient is a positive multiple of the CE gradient
    (``q - onehot``, q the softmax over the other classes): sign and normalised steps are the
    cross-entropy's. Computed as ``softmax - onehot``, the CE gradient loses its ``-1`` on the
    true class once ``p_y`` rounds to 1 and underflows to an exact zero when the model is very
    confident (large logits, e.g. defensive distillation), which leaves a CE attack frozen
    wherever it starts; the log-odds form does neither.
    """
    true_logit = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - true_logit


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020), untargeted: invariant to the scale and
    shift of the logits. ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)``; needs >= 3 classes."""
    ordered = logits.sort(dim=1, descending=True).values
    scale = ordered[:, 0] - ordered[:, 2] + 1e-12
    return margin_loss(logits, labels) / scale


def targeted_dlr_loss(
    logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Targeted DLR of APGD-T: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``; >= 4 classes."""
    ordered = logits.sort(dim=1, descending=True).values
    scale = ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + 1e-12
    gap = logits.gather(1, targets[:, None]) - logits.gather(1, labels[:, None])
    return gap.squeeze(1) / scale


def validate_loss(loss: LossSpec) -> LossSpec:
    """Return ``loss`` (lower-cased when named) or raise ConfigError."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss.lower() in NAMED_LOSSES:
        return loss.lower()
    raise ConfigError(
        f"unknown attack loss {loss!r}: use one of {', '.join(NAMED_LOSSES)} or a callable"
    )


def per_example_objective(
    loss: str, logits: torch.Tensor, labels: torch.Tensor, targeted: bool
) -> torch.Tensor:
    """Per-example value of the quantity the attack maximises.

    Targeted (``labels`` are targets): the negated loss towards the target (``-CE``,
    ``-margin``, ``-DLR``), which the attack drives up as the target gets closer.
    """
    if loss == "ce":
        if targeted:
            return -F.cross_entropy(logits, labels, reduction="none")
        return cross_entropy_ascent(logits, labels)
    value = margin_loss(logits, labels) if loss == "margin" else dlr_loss(logits, labels)
    return -value if targeted else value


def batch_objective(
    loss: str,
    logits: torch.Tensor,
    labels: torch.Tensor,
    targeted: bool,
    independent_rows: bool = True,
) -> torch.Tensor:
    """Scalar whose input gradient the attack ascends.

    Untargeted cross-entropy is torchattacks' batch-mean CE (so that sign steps agree with
    torchattacks bit for bit) except on saturated examples (CE < ``SATURATED_CE``), which
    ascend the log-odds form instead (`cross_entropy_ascent`): same direction in exact
    arithmetic, but one that float32 does not flatten to zero. That swap rescales those rows'
    gradients, which is harmless only when rows do not interact (``independent_rows``: eval
    mode); with batch statistics the plain batch-mean CE is kept.
    """
    if loss == "ce" and not targeted and not independent_rows:
        return F.cross_entropy(logits, labels)
    if loss != "ce" or targeted:
        return per_example_objective(loss, logits, labels, targeted).sum()
    ce = F.cross_entropy(logits, labels, reduction="none")
    saturated = ce.detach() < SATURATED_CE
    healthy = torch.where(saturated, torch.zeros_like(ce), ce).sum() / max(len(ce), 1)
    if not saturated.any():
        return healthy
    return healthy + cross_entropy_ascent(logits[saturated], labels[saturated]).sum()
