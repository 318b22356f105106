"""Run any torchattacks attack under robustlab's guarantees.

The wrapper restores every module's mode, BN statistics and parameter gradients (some
torchattacks attacks call ``loss.backward()``), moves inputs to the model's device and offers
the same ``run`` as the native attacks.
"""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.base import AttackResult, is_success, perturbation_norm
from robustlab.models.runtime import model_context, model_device

L2_ATTACKS = {"cw", "pgdl2", "deepfool", "eaden", "pgdrsl2"}


class GradientCounter:
    """Counts examples forwarded with autograd recording, a proxy for gradient evaluations.

    Third-party attacks do not report their cost; every gradient they take needs such a forward
    pass, so the count is exact for one-gradient-per-forward attacks and an upper bound otherwise.
    """

    def __init__(self, model: nn.Module):
        self.count = 0
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple) -> None:
        if (
            inputs
            and torch.is_tensor(inputs[0])
            and torch.is_grad_enabled()
            and inputs[0].requires_grad
        ):
            self.count += len(inputs[0])

    def remove(self) -> None:
        self._handle.remove()


class TorchattacksAttack:
    """A torchattacks attack with robustlab's ``__call__``/``run`` contract."""

    def __init__(self, attack: object, model: nn.Module, name: str, targeted: bool = False):
        self.attack = attack
        self.model = model
        self.name = name
        self.targeted = targeted
        self.eps = getattr(attack, "eps", None)
        norm = str(getattr(attack, "norm", "")) or ("L2" if name.lower() in L2_ATTACKS else "Linf")
        self.norm = "L2" if norm.upper() == "L2" or name.lower() in L2_ATTACKS else "Linf"
        self.device = model_device(model)
        if hasattr(attack, "set_device"):
            attack.set_device(self.device)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images, like the wrapped attack's ``__call__``."""
        with model_context(self.model, "eval"):
            adv = self.attack(images.detach().to(self.device), labels.detach().to(self.device))
        return adv.detach()

    def run(self, images: torch.Tensor, labels: torch.Tensor) -> AttackResult:
        """Attack a batch; ``grad_evals`` counts examples forwarded with gradient tracking."""
        images, labels = images.detach().to(self.device), labels.detach().to(self.device)
        counter = GradientCounter(self.model)
        try:
            with model_context(self.model, "eval"):
                adv = self.attack(images, labels).detach()
                with torch.no_grad():
                    success = is_success(self.model(adv), labels, self.targeted)
        finally:
            counter.remove()
        return AttackResult(adv, success, perturbation_norm(adv - images, self.norm), counter.count)

    def __repr__(self) -> str:
        return f"TorchattacksAttack({self.attack!r})"
