"""The public protocol of iterative (projected-gradient) attacks.

An iterative attack is ``start``, then repeated ``gradient`` -> ``step``, each step projected
back into the ball (``project``). PGD and APGD implement it; a scheduler such as the
eps-continuation stream (`robustlab.evaluation.continuation`) drives any attack through these
public methods only, giving every row of a batch its own radius and step size::

    adv = attack.start(images)
    for _ in range(attack.steps):
        grad, logits = attack.gradient(adv, images, labels)
        adv = attack.step(adv, images, grad, eps=radii, alpha=step_sizes)

Call ``gradient`` inside ``attack.model_context()``
(or ``robustlab.models.inference.model_context``) so that the model is in the attack's mode
and its parameters are frozen.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn

from robustlab.attacks import geometry
from robustlab.attacks.base import Attack


class IterativeAttack(Attack):
    """An `Attack` made of projected steps: ``start``, ``gradient``, ``step``, ``project``.

    ``eps``/``alpha`` arguments are a float or a (N,) tensor (one radius / step size per row);
    ``None`` means the attack's own. ``continuable``: whether the whole attack IS that loop
    (``steps`` calls of ``step`` from ``start``, rows independent of one another), so that a
    scheduler may run it itself; an attack with its own state between steps (APGD's momentum
    and step-size schedule) says False and is run as a whole.
    """

    steps: int = 1
    alpha: float = 0.0
    random_start: bool = True
    # L1 only: the sparse step moves the top (1 - l1_quantile) coordinates by |grad|.
    l1_quantile: float = geometry.l1.DEFAULT_QUANTILE
    # L2 only: added to the gradient norm before dividing (torchattacks.PGDL2's option).
    eps_for_division: float = geometry.EPS_DIVISION

    @property
    def continuable(self) -> bool:
        return False

    def model_context(self) -> AbstractContextManager[nn.Module]:
        """The model in the attack's mode, parameters frozen, everything restored on exit."""
        return self._context()

    def start(self, images: torch.Tensor) -> torch.Tensor:
        """The first iterate: a random point of the ball (``random_start``) or the images."""
        if not self.random_start:
            return images.clone()
        return geometry.random_start(images, self.eps, self.norm)

    def step(
        self,
        adv: torch.Tensor,
        images: torch.Tensor,
        grad: torch.Tensor,
        eps: float | torch.Tensor | None = None,
        alpha: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One steepest-ascent step of size ``alpha`` along ``grad``, projected (radius ``eps``)."""
        alpha = self.alpha if alpha is None else alpha
        moved = geometry.ascent_step(
            adv.detach(),
            grad,
            alpha,
            self.norm,
            quantile=self.l1_quantile,
            eps_for_division=self.eps_for_division,
        )
        return self.project(moved, images, eps)

    def project(
        self, adv: torch.Tensor, images: torch.Tensor, eps: float | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Back into the ball of radius ``eps`` around ``images`` and into [0, 1]."""
        return geometry.project(adv, images, self.eps if eps is None else eps, self.norm)
