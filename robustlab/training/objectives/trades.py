"""TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
Accuracy"): ``CE(f(x), y) + beta * KL(softmax f(x) || softmax f(x_adv))``.

``beta`` sets the trade-off: 0 is standard training, larger values buy robustness with clean
accuracy (the paper uses 1 to 6; sweep it to trace the frontier).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import ConfigError
from robustlab.models.inference import model_context
from robustlab.training.ddp import bare_model
from robustlab.training.global_batch import draw_rows
from robustlab.training.objectives.adversarial import craft
from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.registry import (
    Defense,
    HeldOutOptions,
    bounded,
    register_defense,
)

START_STD = 0.001  # the paper's x + 0.001 * N(0, I) start


def kl_to_clean(
    clean_probs: torch.Tensor,
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-example ``KL(clean_probs || softmax f(adv))`` as a loss for the native PGD engine."""

    def loss(model: nn.Module, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor):
        log_adv = F.log_softmax(model(adv).float(), dim=1)
        return F.kl_div(log_adv, clean_probs, reduction="none").sum(dim=1)

    return loss


class TRADES(Objective):
    """TRADES training objective (Linf).

    Inner maximisation: ``x_adv`` maximises ``KL(f(x) || f(x_adv))`` over the eps-ball with the
    native PGD engine (``steps`` sign steps of size ``alpha``, no early stopping), the KL given
    to it as a callable loss. As in the paper the model is in eval mode while crafting (the
    clean target included) and the search starts at ``x + 0.001 * N(0, I)``: at ``x`` itself
    the KL has zero gradient. The engine's only random start is uniform in the whole ball, so
    the attack is started from that noisy point without a random start (the ball is centered
    on it) and the result is projected onto the eps-ball around ``x``; with the 0.001 noise the
    two balls differ by far less than a step.

    Outer minimisation, in train mode: ``CE(f(x), y) + beta * KL(softmax f(x) ||
    softmax f(x_adv))`` with batch-mean KL. ``grad_evals`` = crafting steps + the clean and the
    adversarial pass of the loss, per example; the no-grad forward that fixes the crafting
    target is not a gradient evaluation. The returned logits are the adversarial ones.
    """

    name = "trades"

    def __init__(self, eps: float, alpha: float, steps: int, beta: float = 6.0) -> None:
        if eps < 0 or alpha <= 0 or steps < 1:
            raise ConfigError(f"need eps >= 0, alpha > 0, steps >= 1; got {eps}, {alpha}, {steps}")
        if beta < 0:
            raise ConfigError(f"beta must be >= 0, got {beta}")
        self.eps, self.alpha, self.steps, self.beta = float(eps), float(alpha), int(steps), beta

    def adversarial(self, model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``x_adv`` for a batch (in the eps-ball, in [0, 1]) and its gradient evaluations."""
        model = bare_model(model)  # under DDP: the attack's passes skip the wrapper
        with model_context(model, "eval"), torch.no_grad():  # mode and BN restored after
            clean_probs = F.softmax(model(images).float(), dim=1)
        noise = draw_rows(images, torch.randn_like)  # the global batch's draw under DDP
        start = (images + START_STD * noise).clamp(0.0, 1.0)
        labels = clean_probs.argmax(dim=1)  # unused by the KL loss; the engine wants labels
        adv, evals = craft(
            model,
            start,
            labels,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            random_start=False,
            loss=kl_to_clean(clean_probs),
        )
        adv = torch.min(torch.max(adv, images - self.eps), images + self.eps).clamp(0.0, 1.0)
        return adv.detach(), evals

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        adv, grad_evals = self.adversarial(model, images)
        clean_logits = model(images)
        adv_logits = model(adv)
        natural = F.cross_entropy(clean_logits, labels)
        robust = F.kl_div(
            F.log_softmax(adv_logits.float(), dim=1),
            F.softmax(clean_logits.float(), dim=1),
            reduction="batchmean",
        )
        loss = natural + self.beta * robust
        return ObjectiveStep(
            loss=loss, logits=adv_logits.detach(), grad_evals=grad_evals + 2 * images.shape[0]
        )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "beta": self.beta,
            "start_std": START_STD,
            "inner_early_stop": False,
        }


@register_defense("trades")
@dataclass
class TRADESDefense(HeldOutOptions, Defense):
    """TRADES with ``steps`` KL-PGD steps of ``step_size * eps`` and trade-off ``beta``."""

    eps: float = bounded(0.1, 0.0, 1.0)
    steps: int = bounded(7, 1)
    step_size: float = bounded(0.25, 0.0, exclusive_low=True)  # alpha = step_size * eps
    beta: float = bounded(6.0, 0.0)

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        return TRADES(
            eps=self.eps, alpha=self.step_size * self.eps, steps=self.steps, beta=self.beta
        )
