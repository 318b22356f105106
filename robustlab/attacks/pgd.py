"""Projected Gradient Descent (Linf, L2 and L1) with early stopping and restarts."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.base import is_success
from robustlab.attacks.geometry import NORMS
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.l1 import DEFAULT_QUANTILE
from robustlab.attacks.losses import LossSpec
from robustlab.errors import ConfigError


class PGD(IterativeAttack):
    r"""PGD from 'Towards Deep Learning Models Resistant to Adversarial Attacks'
    (Madry et al., 2018) [https://arxiv.org/abs/1706.06083].

    Distance measure: Linf (sign step, clip to the eps-cube), L2 (normalised gradient step,
    projection on the eps-ball), always clipped to [0, 1], or L1 (the sparse sign step of
    Tramèr & Boneh 2019 on the top ``1 - l1_quantile`` coordinates by |grad|, L1 length alpha,
    then the exact projection onto the L1 ball ∩ [0, 1]; `robustlab.attacks.l1`).

    Arguments (torchattacks.PGD's, then robustlab's keyword-only ones):
        model (nn.Module): model to attack; takes [0, 1] images and returns logits.
        eps (float): radius of the ball. (Default: 8/255)
        alpha (float): step size. (Default: 2/255)
        steps (int): number of gradient steps. (Default: 10)
        random_start (bool): uniform start in the Linf cube, torchattacks.PGDL2's random
            start in the L2 ball, or a Laplace direction at a uniform radius in the L1 ball.
            (Default: True)
        norm (str): ``"Linf"``, ``"L2"`` or ``"L1"``. (Default: "Linf")
        restarts (int): independent random starts; each example keeps the first restart that
            fools the model, else the one with the highest loss. (Default: 1)
        loss: ``"ce"``, ``"margin"`` (Carlini–Wagner logit margin), ``"dlr"`` or a callable
            ``loss(model, adv_images, images, labels) -> Tensor[N]`` to maximise. (Default: "ce")
        targeted (bool): ``labels`` are target classes to reach. (Default: False)
        early_stop (bool): stop updating an example once it fools the model and return that
            first fooling iterate; only the examples still active are forwarded. (Default: True)
        model_mode (str): ``"eval"`` or ``"train"`` (batch statistics). (Default: "eval")
        l1_quantile (float): L1 only: the step moves the coordinates whose |grad| is in the top
            ``1 - l1_quantile`` fraction; 0 moves all of them equally. (Default: 0.99)

    Shape:
        - images: (N, C, H, W), values in [0, 1]. labels: (N,) int64. output: (N, C, H, W).

    PGD implements the iterative-attack protocol (``start``, ``gradient``, ``step``,
    ``project``; `robustlab.attacks.iterative`), through which the eps-grid evaluator runs
    it as one eps-continuation stream.

    With ``early_stop=False`` and ``restarts=1`` the result equals ``torchattacks.PGD`` (Linf)
    or ``torchattacks.PGDL2`` (L2) under the same random state.

    Examples::
        >>> attack = PGD(model, eps=8/255, alpha=2/255, steps=10)
        >>> adv_images = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        random_start: bool = True,
        *,
        norm: str = "Linf",
        restarts: int = 1,
        loss: LossSpec = "ce",
        targeted: bool = False,
        early_stop: bool = True,
        model_mode: str = "eval",
        l1_quantile: float = DEFAULT_QUANTILE,
    ):
        super().__init__(model, eps, loss=loss, targeted=targeted, model_mode=model_mode)
        if norm not in NORMS:
            raise ConfigError(f"PGD norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if not isinstance(steps, int) or steps < 0 or not isinstance(restarts, int) or restarts < 1:
            raise ConfigError(
                f"PGD needs steps >= 0 and restarts >= 1, got {steps!r}, {restarts!r}"
            )
        if alpha < 0:
            raise ConfigError(f"PGD alpha must be >= 0, got {alpha!r}")
        if not 0 <= l1_quantile < 1:
            raise ConfigError(f"PGD l1_quantile must be in [0, 1), got {l1_quantile!r}")
        if restarts > 1 and not random_start:
            raise ConfigError("PGD restarts > 1 repeat the same attack unless random_start=True")
        self.norm = norm
        self.alpha = float(alpha)
        self.steps = steps
        self.random_start = bool(random_start)
        self.restarts = restarts
        self.early_stop = bool(early_stop)
        self.l1_quantile = float(l1_quantile)
        self._check_pixel_eps()

    @property
    def continuable(self) -> bool:
        """One start, early stop, eval mode: rows are independent and the attack is the loop."""
        return self.restarts == 1 and self.early_stop and self.model_mode == "eval"

    def _craft(
        self, images: torch.Tensor, labels: torch.Tensor, need_success: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        if self.restarts == 1:
            adv, success, _, evals = self._single_run(images, labels, need_success)
            return adv, success, evals
        best = images.clone()
        best_value = images.new_full((len(images),), float("-inf"))
        fooled = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        evals = 0
        for _ in range(self.restarts):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            adv, success, value, run_evals = self._single_run(images[todo], labels[todo], True)
            evals += run_evals
            better = success | (value > best_value[todo])
            best[todo[better]] = adv[better]
            best_value[todo[better]] = value[better]
            fooled[todo[success]] = True
        return best, fooled, evals

    def _single_run(
        self, images: torch.Tensor, labels: torch.Tensor, score: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, int]:
        """One random start: (adv, success, objective value, grad_evals)."""
        adv = self.start(images)
        if not self.early_stop:
            for _ in range(self.steps):
                grad, _ = self.gradient(adv, images, labels)
                adv = self.step(adv, images, grad)
            if not score:
                return adv, None, None, self.steps * len(images)
            success, value = self._score(adv, images, labels)
            return adv, success, value, self.steps * len(images)
        success = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        active = torch.arange(len(images), device=images.device)
        evals = 0
        for _ in range(self.steps):
            if active.numel() == 0:
                break
            x, x0, y = adv[active], images[active], labels[active]
            grad, logits = self.gradient(x, x0, y)
            evals += len(active)
            fooled = is_success(logits, y, self.targeted)
            # A fooling iterate is final: later steps could only move it back across the boundary.
            success[active[fooled]] = True
            keep = ~fooled
            active = active[keep]
            adv[active] = self.step(x[keep], x0[keep], grad[keep])
        if not score:
            return adv, None, None, evals
        value = images.new_full((len(images),), float("inf"))
        if active.numel():
            last_success, last_value = self._score(adv[active], images[active], labels[active])
            success[active] = last_success
            value[active] = last_value
        return adv, success, value, evals


class PGDL2(PGD):
    r"""PGD in the L2 ball with torchattacks.PGDL2's signature: ``PGD(norm="L2")``.

    Arguments (torchattacks.PGDL2's, then PGD's keyword-only ones):
        model (nn.Module): model to attack; takes [0, 1] images and returns logits.
        eps (float): radius of the L2 ball. (Default: 1.0)
        alpha (float): step size. (Default: 0.2)
        steps (int): number of steps. (Default: 10)
        random_start (bool): torchattacks.PGDL2's random start in the ball. (Default: True)
        eps_for_division (float): added to the gradient norm before dividing. (Default: 1e-10)

    With ``early_stop=False`` the result equals ``torchattacks.PGDL2`` under the same random
    state.

    Examples::
        >>> adv_images = PGDL2(model, eps=1.0, alpha=0.2, steps=10)(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 1.0,
        alpha: float = 0.2,
        steps: int = 10,
        random_start: bool = True,
        eps_for_division: float = 1e-10,
        *,
        restarts: int = 1,
        loss: LossSpec = "ce",
        targeted: bool = False,
        early_stop: bool = True,
        model_mode: str = "eval",
    ):
        super().__init__(
            model,
            eps,
            alpha,
            steps,
            random_start,
            norm="L2",
            restarts=restarts,
            loss=loss,
            targeted=targeted,
            early_stop=early_stop,
            model_mode=model_mode,
        )
        if not eps_for_division > 0:
            raise ConfigError(f"PGDL2 eps_for_division must be > 0, got {eps_for_division!r}")
        self.eps_for_division = float(eps_for_division)
