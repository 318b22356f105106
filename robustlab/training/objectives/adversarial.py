"""PGD adversarial training (Madry et al. 2018) and fast FGSM training (Wong et al. 2020).

Both solve ``min_theta E[max_{||delta|| <= eps} CE(f(x + delta), y)]``: the inner maximisation
is the native PGD engine of ``robustlab.attacks`` (never a loop of its own), so training and
evaluation attack the model the same way. Inputs are images in [0, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks.pgd import PGD
from robustlab.errors import ConfigError
from robustlab.models.inference import check_model_mode
from robustlab.training.ddp import bare_model
from robustlab.training.global_batch import draw_rows
from robustlab.training.objectives.base import Objective, ObjectiveStep
from robustlab.training.objectives.registry import (
    Defense,
    HeldOutOptions,
    bounded,
    one_of,
    register_defense,
)

log = logging.getLogger(__name__)

AttackLoss = str | Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def craft(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    norm: str = "Linf",
    model_mode: str = "eval",
    loss: AttackLoss = "ce",
) -> tuple[torch.Tensor, int]:
    """Adversarial examples for a training step and the gradient evaluations they cost.

    ``early_stop=False``: during training the inner maximisation runs at full strength on every
    example. Stopping an example as soon as it is misclassified would hand the update points just
    across the boundary instead of the worst case in the ball, i.e. a weaker defense. The attack
    differentiates w.r.t. the input only, so the parameters' ``.grad`` stay as they were, and it
    restores the model's mode and BatchNorm statistics when it finishes. Under DDP it attacks
    the model inside the wrapper, on this rank's rows.
    """
    if eps <= 0 or steps <= 0:
        return images.detach(), 0
    attack = _TrainingPGD(
        bare_model(model),
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        norm=norm,
        loss=loss,
        early_stop=False,
        model_mode=model_mode,
    )
    # without early stopping every step costs one input gradient per example; calling the
    # attack (rather than .run) also skips the success bookkeeping forward pass
    return attack(images, labels).detach(), steps * images.shape[0]


class _TrainingPGD(PGD):
    """PGD whose random start is drawn for the whole global batch under DDP (this rank's rows
    kept), so an example's start is the same for any number of processes; in one process it is
    PGD's own start."""

    def start(self, images: torch.Tensor) -> torch.Tensor:
        return draw_rows(images, super().start)


def linear_warmup(eps: float, epoch: int, warmup_epochs: int) -> float:
    """The eps of ``epoch`` (0-based) under a linear ramp from 0 to ``eps`` over ``warmup_epochs``.

    Epoch 0 trains at eps 0 (clean), epoch ``warmup_epochs`` and later at the full eps; a
    gentle start keeps early adversarial training from collapsing to a constant prediction.
    """
    if warmup_epochs <= 0:
        return eps
    return eps * min(1.0, epoch / warmup_epochs)


class AdversarialTraining(Objective):
    """PGD adversarial training: ``mix * CE(f(x), y) + (1 - mix) * CE(f(x_adv), y)``.

    ``x_adv`` is a PGD attack (``steps`` steps of size ``alpha`` in the ``norm`` ball of radius
    ``eps``, uniform random start if ``random_start``). ``mix=0`` is plain Madry training;
    ``mix>0`` is the mixed clean/adversarial objective (Goodfellow et al. 2015) that trades
    robustness for clean accuracy; ``mix=1`` is standard training (no attack is run).

    ``model_mode`` is the BatchNorm mode while crafting. ``"eval"`` (default) uses the running
    statistics: the attack of an example does not depend on the rest of the batch, and the
    crafting passes never touch the statistics. ``"train"`` crafts against the batch statistics
    the update itself will use (as in Madry et al.'s code); the running statistics are still
    left unchanged by the attack.

    ``warmup_epochs`` ramps eps linearly from 0 (see `linear_warmup`); ``alpha`` scales
    with it so the number of steps needed to cross the ball stays the same.

    ``grad_evals`` = crafting passes + one pass per loss term, per example. The logits returned
    for the training accuracy are the adversarial ones (robust training accuracy).
    """

    name = "pgd_at"

    def __init__(
        self,
        eps: float,
        alpha: float,
        steps: int,
        *,
        random_start: bool = True,
        mix: float = 0.0,
        model_mode: str = "eval",
        warmup_epochs: int = 0,
        norm: str = "Linf",
    ) -> None:
        if eps < 0 or alpha <= 0 or steps < 1:
            raise ConfigError(f"need eps >= 0, alpha > 0, steps >= 1; got {eps}, {alpha}, {steps}")
        if not 0.0 <= mix <= 1.0:
            raise ConfigError(f"mix must be in [0, 1], got {mix}")
        if warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.eps, self.alpha, self.steps = float(eps), float(alpha), int(steps)
        self.random_start, self.mix = random_start, float(mix)
        self.model_mode = check_model_mode(model_mode)
        self.warmup_epochs, self.norm = int(warmup_epochs), norm
        self.current_eps = linear_warmup(self.eps, 0, self.warmup_epochs)

    @property
    def current_alpha(self) -> float:
        """The step size at the current eps (kept in the ratio alpha / eps)."""
        return self.alpha * (self.current_eps / self.eps) if self.eps > 0 else self.alpha

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Set this epoch's eps from the warm-up schedule (a pure function of the epoch)."""
        self.current_eps = linear_warmup(self.eps, epoch, self.warmup_epochs)
        if self.warmup_epochs:
            log.debug("epoch %d: adversarial training at eps=%.4g", epoch, self.current_eps)

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> ObjectiveStep:
        batch = images.shape[0]
        loss, grad_evals, logits = images.new_zeros(()), 0, None
        if self.mix < 1.0:
            adv, grad_evals = craft(
                model,
                images,
                labels,
                eps=self.current_eps,
                alpha=self.current_alpha,
                steps=self.steps,
                random_start=self.random_start,
                norm=self.norm,
                model_mode=self.model_mode,
            )
            logits = model(adv)  # the attack gave the model back in its own (train) mode
            loss = (1.0 - self.mix) * F.cross_entropy(logits, labels)
            grad_evals += batch
        if self.mix > 0.0:
            clean_logits = model(images)
            loss = loss + self.mix * F.cross_entropy(clean_logits, labels)
            grad_evals += batch
            logits = clean_logits if logits is None else logits
        return ObjectiveStep(loss=loss, logits=logits.detach(), grad_evals=grad_evals)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "random_start": self.random_start,
            "mix": self.mix,
            "model_mode": self.model_mode,
            "warmup_epochs": self.warmup_epochs,
            "norm": self.norm,
            "inner_early_stop": False,
        }


class FastAdversarialTraining(AdversarialTraining):
    """Fast AT, "Fast is better than free" (Wong, Rice & Kolter 2020): FGSM, random start.

    One PGD step of size ``alpha`` (default ``1.25 * eps``) from a uniform random point of the
    eps-ball, projected back onto the ball. Meant to be used with the triangular ``onecycle``
    learning-rate schedule (``build_scheduler(..., "onecycle", ...)``) and a held-out PGD
    monitor (``robustlab.training.robust_monitor``): the method can overfit catastrophically,
    i.e. lose all PGD robustness within an epoch while FGSM accuracy keeps rising.
    """

    name = "fast_at"

    def __init__(
        self,
        eps: float,
        alpha: float | None = None,
        *,
        random_start: bool = True,
        mix: float = 0.0,
        model_mode: str = "eval",
        warmup_epochs: int = 0,
        norm: str = "Linf",
    ) -> None:
        alpha = 1.25 * eps if alpha is None else alpha
        super().__init__(
            eps,
            alpha,
            1,
            random_start=random_start,
            mix=mix,
            model_mode=model_mode,
            warmup_epochs=warmup_epochs,
            norm=norm,
        )


@dataclass
class _AdversarialOptions(HeldOutOptions, Defense):
    eps: float = bounded(0.1, 0.0, 1.0)
    step_size: float = bounded(0.25, 0.0, exclusive_low=True)  # alpha = step_size * eps
    random_start: bool = True
    mix: float = bounded(0.0, 0.0, 1.0)
    model_mode: str = one_of("eval", "eval", "train")
    eps_warmup_epochs: int = bounded(0, 0)

    def _shared(self) -> dict:
        return dict(
            eps=self.eps,
            alpha=self.step_size * self.eps,
            random_start=self.random_start,
            mix=self.mix,
            model_mode=self.model_mode,
            warmup_epochs=self.eps_warmup_epochs,
        )


@register_defense("pgd_at")
@dataclass
class PGDAdversarialTraining(_AdversarialOptions):
    """PGD adversarial training (Madry et al. 2018): ``steps`` PGD steps of ``step_size * eps``."""

    steps: int = bounded(7, 1)

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        return AdversarialTraining(steps=self.steps, **self._shared())


@register_defense("fast_at")
@dataclass
class FastAdversarialTrainingDefense(_AdversarialOptions):
    """Fast AT (Wong et al. 2020): one FGSM step of ``1.25 * eps`` from a random start, with
    the held-out PGD check against catastrophic overfitting."""

    step_size: float = bounded(1.25, 0.0, exclusive_low=True)
    monitor_heldout: bool = True

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        return FastAdversarialTraining(**self._shared())
