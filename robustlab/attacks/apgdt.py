"""APGD-T under torchattacks' name and signature (``torchattacks.APGDT``)."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.apgd import APGD
from robustlab.errors import ConfigError


class APGDT(APGD):
    r"""APGD-T with torchattacks.APGDT's signature: `APGD` with ``targeted=True``, one
    run per target among the ``n_classes - 1`` most likely wrong classes, on the targeted DLR
    loss (as the port).

    Examples::
        >>> adv_images = APGDT(model, eps=8/255, steps=10, n_classes=10)(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        norm: str = "Linf",
        eps: float | torch.Tensor = 8 / 255,
        steps: int = 10,
        n_restarts: int = 1,
        seed: int | torch.Tensor = 0,
        eot_iter: int = 1,
        rho: float = 0.75,
        verbose: bool = False,
        n_classes: int = 10,
        *,
        early_stop: bool = True,
        model_mode: str = "eval",
    ):
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ConfigError(f"APGDT needs n_classes >= 2, got {n_classes!r}")
        super().__init__(
            model,
            norm,
            eps,
            steps,
            n_restarts=n_restarts,
            seed=seed,
            loss="dlr",
            eot_iter=eot_iter,
            rho=rho,
            verbose=verbose,
            targeted=True,
            n_target_classes=n_classes - 1,
            early_stop=early_stop,
            model_mode=model_mode,
        )
        self.n_classes = n_classes


__all__ = ["APGDT"]
