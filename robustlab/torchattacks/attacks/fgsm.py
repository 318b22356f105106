"""`FGSM` under torchattacks' name and defaults, run by robustlab's native FGSM."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.fgsm import FGSM as NativeFGSM
from robustlab.torchattacks.attack import Attack
from robustlab.torchattacks.native import run_engine


class FGSM(Attack):
    r"""FGSM from 'Explaining and Harnessing Adversarial Examples' (Goodfellow et al., 2015)
    [https://arxiv.org/abs/1412.6572].

    Distance measure: Linf. One step ``x + eps * sign(grad)`` of the cross-entropy, clipped to
    [0, 1]; the output equals ``torchattacks.FGSM``'s.

    Arguments:
        model (nn.Module): model to attack.
        eps (float): maximum perturbation. (Default: 8/255)

    Shape:
        - images: (N, C, H, W) in [0, 1]. labels: (N,) class indices. output: (N, C, H, W).

    Examples::
        >>> attack = torchattacks.FGSM(model, eps=8/255)
        >>> adv_images = attack(images, labels)
    """

    def __init__(self, model: nn.Module, eps: float = 8 / 255):
        super().__init__("FGSM", model)
        self.eps = eps
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Overridden: the adversarial images."""
        return run_engine(self, NativeFGSM, images, labels, eps=self.eps)


__all__ = ["FGSM"]
