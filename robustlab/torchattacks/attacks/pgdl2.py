"""`PGDL2` under torchattacks' name and defaults (no early stop), run by robustlab's native
PGD in the L2 ball."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.pgd import PGDL2 as NativePGDL2
from robustlab.torchattacks.attack import Attack
from robustlab.torchattacks.native import run_engine


class PGDL2(Attack):
    r"""PGD in the L2 ball from 'Towards Deep Learning Models Resistant to Adversarial Attacks'
    (Madry et al., 2018) [https://arxiv.org/abs/1706.06083].

    Distance measure: L2. Every example takes all ``steps`` normalized-gradient steps (no early
    stop), each projected onto the eps-ball and [0, 1]; seeded, the output equals
    ``torchattacks.PGDL2``'s.

    Arguments:
        model (nn.Module): model to attack.
        eps (float): maximum perturbation. (Default: 1.0)
        alpha (float): step size. (Default: 0.2)
        steps (int): number of steps. (Default: 10)
        random_start (bool): start at a random point of the eps-ball. (Default: True)
        eps_for_division (float): added to the gradient norm before dividing. (Default: 1e-10)

    Shape:
        - images: (N, C, H, W) in [0, 1]. labels: (N,) class indices. output: (N, C, H, W).

    Examples::
        >>> attack = torchattacks.PGDL2(model, eps=1.0, alpha=0.2, steps=10, random_start=True)
        >>> adv_images = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 1.0,
        alpha: float = 0.2,
        steps: int = 10,
        random_start: bool = True,
        eps_for_division: float = 1e-10,
    ):
        super().__init__("PGDL2", model)
        self.eps = eps
        self.alpha = alpha
        self.steps = steps
        self.random_start = random_start
        self.eps_for_division = eps_for_division
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Overridden: the adversarial images."""
        options = {"eps": self.eps, "alpha": self.alpha, "steps": self.steps}
        return run_engine(
            self,
            NativePGDL2,
            images,
            labels,
            random_start=self.random_start,
            eps_for_division=self.eps_for_division,
            early_stop=False,
            **options,
        )


__all__ = ["PGDL2"]
