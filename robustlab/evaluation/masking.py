"""The measurements behind the gradient-masking checks: input-gradient health and accuracy at
a huge eps. The verdicts on them (and on the curves) are the typed checks of
`robustlab.evaluation.checks`, the one source of every masking diagnosis."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.pgd import PGD
from robustlab.evaluation.grid import robust_accuracy
from robustlab.evaluation.judge import Judge
from robustlab.inputs import check_images
from robustlab.models.inference import model_context, model_device

# The examples whose input gradients the zero_gradients check reads: the first ones, however
# the evaluation batches, so that the library and the command line read the same sample.
GRADIENT_SAMPLE = 256


@dataclass
class GradientHealth:
    """Fractions of examples whose input gradient is all zero / has a non-finite entry."""

    zero_fraction: float
    nonfinite_fraction: float
    n: int


def gradient_health(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> GradientHealth:
    """Check that cross-entropy input gradients carry a signal for every example.

    ``images`` must be valid inputs: a NaN or inf pixel is an input error (InputError naming the
    rows), never counted as the model's non-finite gradient."""
    check_images(images)
    device = model_device(model)
    zero = nonfinite = 0
    with model_context(model, "eval"), torch.enable_grad():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].detach().to(device).requires_grad_(True)
            y = labels[start : start + batch_size].to(device)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            grad = torch.autograd.grad(loss, x, allow_unused=True)[0]
            flat = torch.zeros_like(x).flatten(1) if grad is None else grad.flatten(1)
            finite = torch.isfinite(flat).all(dim=1)
            nonfinite += int((~finite).sum())
            zero += int((finite & (flat == 0).all(dim=1)).sum())
    n = len(images)
    return GradientHealth(zero / max(n, 1), nonfinite / max(n, 1), n)


def large_eps_check(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float = 0.5,
    *,
    steps: int = 20,
    max_examples: int = 256,
    batch_size: int = 256,
    judge: Judge | None = None,
) -> float:
    """Accuracy under Linf PGD at a huge eps (0.5 lets any pixel reach any value); ~0 if sound.
    ``judge``: the evaluation's judge (default: one forward of ``model``); the attack crafts
    on ``model``."""
    images, labels = images[:max_examples], labels[:max_examples]

    def factory(e: float) -> PGD:
        return PGD(model, eps=e, alpha=madry_step_size(e, steps), steps=steps)

    curve = robust_accuracy(
        model,
        images,
        labels,
        factory,
        [eps],
        batch_size=batch_size,
        name="large-eps PGD",
        judge=judge,
    )
    return curve.points[0].accuracy


__all__ = ["GRADIENT_SAMPLE", "GradientHealth", "gradient_health", "large_eps_check"]
