"""robustlab's own engines behind drop-in classes whose output is torchattacks' exactly.

A native drop-in class (`FGSM`, `PGD`, `PGDL2`) keeps torchattacks' constructor, attributes and
base class, and its ``forward`` runs robustlab's implementation configured as torchattacks
runs: no early stop, one start, torchattacks' batch-mean cross-entropy, the model as
``get_logits`` sees it (normalized when torchattacks would normalize), the targets of the
attack mode, and the model's modes as ``set_model_training_mode`` set them. Seeded outputs then
equal torchattacks' (the parity tests hold them to 1e-6).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks.base import Attack as Engine

#: Drop-in classes that run robustlab's implementation; the others run torchattacks' code.
NATIVE = ("FGSM", "PGD", "PGDL2")


class LogitsModel(nn.Module):
    """The attack's model as the attack's ``get_logits`` sees it."""

    def __init__(self, attack: object):
        super().__init__()
        self.model = attack.model
        # a bound method, not a submodule: the attack is no nn.Module
        object.__setattr__(self, "logits", attack.get_logits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images)


def mean_cross_entropy(
    model: nn.Module, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """torchattacks' loss: the batch-mean cross-entropy (per row, summed by the engine).

    robustlab's own default rescales saturated rows so float32 keeps their gradient; here a
    saturated row stalls as it does in torchattacks, so that outputs agree."""
    return F.cross_entropy(model(adv), labels, reduction="none") / max(len(adv), 1)


@cache
def _as_configured(engine: type[Engine]) -> type[Engine]:
    """``engine`` that accepts any eps (as torchattacks does) and leaves the model's modes to
    the drop-in's base class, which has already set them as torchattacks does."""

    @contextmanager
    def as_set(self: Engine) -> Iterator[nn.Module]:
        yield self.model

    namespace = {"guard_pixel_eps": False, "_context": as_set, "__module__": __name__}
    return type(engine.__name__, (engine,), namespace)


def run_engine(
    attack: object,
    engine: type[Engine],
    images: torch.Tensor,
    labels: torch.Tensor,
    **options: object,
) -> torch.Tensor:
    """Adversarial images of robustlab's ``engine`` built with ``options`` and the drop-in
    ``attack``'s state (targeted mode, training mode, device)."""
    targets = attack.get_target_label(images, labels) if attack.targeted else labels
    mode = "train" if attack._model_training else "eval"
    configured = _as_configured(engine)(
        LogitsModel(attack),
        loss=mean_cross_entropy,
        targeted=attack.targeted,
        model_mode=mode,
        **options,
    )
    if attack.device is not None:
        configured.device = torch.device(attack.device)
    return configured(images, targets)


__all__ = ["NATIVE", "LogitsModel", "mean_cross_entropy", "run_engine"]
