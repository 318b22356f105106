"""Fast Gradient Sign Method."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.base import Attack, Budget, is_success, per_pixel
from robustlab.attacks.losses import LossSpec


class FGSM(Attack):
    r"""FGSM from 'Explaining and Harnessing Adversarial Examples' (Goodfellow et al., 2015)
    [https://arxiv.org/abs/1412.6572].

    Distance measure: Linf. One step ``x + eps * sign(grad)``, clipped to [0, 1].

    Arguments:
        model (nn.Module): model to attack; takes [0, 1] images and returns logits.
        eps (float): maximum perturbation. (Default: 8/255)
        loss: ``"ce"`` (default), ``"margin"`` (Carlini–Wagner logit margin) or a callable
            ``loss(model, adv_images, images, labels) -> Tensor[N]`` to maximise.
        targeted (bool): ``labels`` are target classes to reach. (Default: False)
        model_mode (str): ``"eval"`` (default) or ``"train"``.

    Shape:
        - images: (N, C, H, W), values in [0, 1]. labels: (N,) int64. output: (N, C, H, W).

    ``run(images, labels, eps=tensor)`` takes one eps per example (shape (N,)).

    With the default loss the result equals ``torchattacks.FGSM(model, eps)(images, labels)``.

    Examples::
        >>> attack = FGSM(model, eps=8/255)
        >>> adv_images = attack(images, labels)
        >>> result = attack.run(images, labels)  # adv_images, success, norms, grad_evals
    """

    norm = "Linf"
    supports_per_example_eps = True

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        loss: LossSpec = "ce",
        targeted: bool = False,
        model_mode: str = "eval",
    ):
        super().__init__(model, eps, loss=loss, targeted=targeted, model_mode=model_mode)

    def _craft(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        need_success: bool,
        init: torch.Tensor | None,
        budget: Budget,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        evals = torch.ones(len(images), dtype=torch.long, device=images.device)
        if len(images) == 0:
            return images.clone(), labels.new_zeros(0, dtype=torch.bool), evals
        grad, _ = self._input_grad(images, images, labels)
        step = per_pixel(budget.eps, images.ndim) * grad.sign()
        adv = torch.clamp(images + step, min=0, max=1).detach()
        success = is_success(self._logits(adv), labels, self.targeted) if need_success else None
        return adv, success, evals
