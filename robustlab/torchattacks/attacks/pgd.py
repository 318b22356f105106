"""`PGD` under torchattacks' name and defaults (no early stop), run by robustlab's native PGD."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.pgd import PGD as NativePGD
from robustlab.torchattacks.attack import Attack
from robustlab.torchattacks.native import run_engine


class PGD(Attack):
    r"""PGD from 'Towards Deep Learning Models Resistant to Adversarial Attacks' (Madry et
    al., 2018) [https://arxiv.org/abs/1706.06083].

    Distance measure: Linf. Every example takes all ``steps`` sign steps of the cross-entropy
    (no early stop), each projected onto the eps-cube and [0, 1]; seeded, the output equals
    ``torchattacks.PGD``'s. robustlab's own `robustlab.attacks.PGD` stops each example at its
    first fooling iterate instead.

    Arguments:
        model (nn.Module): model to attack.
        eps (float): maximum perturbation. (Default: 8/255)
        alpha (float): step size. (Default: 2/255)
        steps (int): number of steps. (Default: 10)
        random_start (bool): start at a uniformly random point of the eps-cube. (Default: True)

    Shape:
        - images: (N, C, H, W) in [0, 1]. labels: (N,) class indices. output: (N, C, H, W).

    Examples::
        >>> attack = torchattacks.PGD(model, eps=8/255, alpha=1/255, steps=10, random_start=True)
        >>> adv_images = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        random_start: bool = True,
    ):
        super().__init__("PGD", model)
        self.eps = eps
        self.alpha = alpha
        self.steps = steps
        self.random_start = random_start
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Overridden: the adversarial images."""
        options = {"eps": self.eps, "alpha": self.alpha, "steps": self.steps}
        return run_engine(
            self,
            NativePGD,
            images,
            labels,
            random_start=self.random_start,
            early_stop=False,
            **options,
        )


__all__ = ["PGD"]
