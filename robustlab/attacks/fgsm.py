"""Fast Gradient Sign Method."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.base import Attack, is_success
from robustlab.attacks.losses import LossSpec


class FGSM(Attack):
    r"""FGSM from 'Explaining and Harnessing Adversarial Examples' (Goodfellow et al., 2015)
    [https://arxiv.org/abs/1412.6572].

    Distance measure: Linf. One step ``x + eps * sign(grad)``, clipped to [0, 1].

    Arguments (torchattacks.FGSM's, then robustlab's keyword-only ones):
        model (nn.Module): model to attack; takes [0, 1] images and returns logits.
        eps (float): maximum perturbation. (Default: 8/255)
        loss: ``"ce"`` (default), ``"margin"`` (Carlini–Wagner logit margin), ``"dlr"`` or a
            callable ``loss(model, adv_images, images, labels) -> Tensor[N]`` to maximise.
        targeted (bool): ``labels`` are target classes to reach. (Default: False)
        model_mode (str): ``"eval"`` (default) or ``"train"``.

    Shape:
        - images: (N, C, H, W), values in [0, 1]. labels: (N,) int64. output: (N, C, H, W).

    With the default loss the result equals ``torchattacks.FGSM(model, eps)(images, labels)``.

    Examples::
        >>> attack = FGSM(model, eps=8/255)
        >>> adv_images = attack(images, labels)
        >>> result = attack.run(images, labels)  # adv_images, success, norms, grad_evals
    """

    norm = "Linf"

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        *,
        loss: LossSpec = "ce",
        targeted: bool = False,
        model_mode: str = "eval",
    ):
        super().__init__(model, eps, loss=loss, targeted=targeted, model_mode=model_mode)
        self._check_pixel_eps()

    def _craft(
        self, images: torch.Tensor, labels: torch.Tensor, need_success: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        if len(images) == 0:
            return images.clone(), labels.new_zeros(0, dtype=torch.bool), 0
        grad, _ = self.gradient(images, images, labels)
        adv = torch.clamp(images + self.eps * grad.sign(), min=0, max=1).detach()
        success = is_success(self._logits(adv), labels, self.targeted) if need_success else None
        return adv, success, len(images)
