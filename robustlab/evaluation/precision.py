"""Precision never decides robustness: what bf16 crafting finds is re-checked in fp32.

Attacks may craft on an :class:`~robustlab.models.precision.AutocastModel` (``eval.amp`` on
CUDA): its gradients are as good as fp32's for searching, but a bf16 argmax can differ from
the fp32 one on an example near the decision boundary. Every verdict of the evaluation is
therefore taken on the fp32 model: the eps-grid and suite paths judge on the model itself
whenever an attack crafts on another module (``robustlab.evaluation.grid``), and the
continuation stream, which judges from the crafting pass's own logits, confirms each example
it finds with :func:`confirm_fooled` before counting it. The other way round, an attack must
not stop on an example only bf16 calls fooled (fp32 would then count it robust, unattacked):
the crafting model's tie guard gives near-tied rows their fp32 logits.
"""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.base import is_success
from robustlab.models.precision import AutocastModel


@torch.no_grad()
def confirm_fooled(
    crafting: nn.Module,
    adv: torch.Tensor,
    labels: torch.Tensor,
    fooled: torch.Tensor,
    targeted: bool = False,
) -> torch.Tensor:
    """``fooled`` with each True re-checked by the fp32 model when ``crafting`` ran in reduced
    precision (an :class:`AutocastModel`); unchanged otherwise. An example found in bf16 that
    the fp32 model still classifies correctly is not fooled (the attack goes on with it)."""
    if not isinstance(crafting, AutocastModel) or not bool(fooled.any()):
        return fooled
    # autocast off explicitly: the caller may itself run inside an autocast region
    with torch.autocast(adv.device.type, enabled=False):
        logits = crafting.model(adv[fooled].float())
    confirmed = fooled.clone()
    confirmed[fooled] = is_success(logits, labels[fooled], targeted)
    return confirmed


__all__ = ["confirm_fooled"]
