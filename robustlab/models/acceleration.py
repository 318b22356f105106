"""Running a model fast on a GPU: bf16 autocast, channels-last weights, ``torch.compile``.

Training and attack crafting only need gradients that point the right way, and bf16 autocast
gives them at a fraction of the fp32 cost on tensor cores. A *verdict* (is this example
misclassified?) is never taken from a bf16 pass: ``AutocastModel`` is a crafting copy
whose owner keeps the fp32 model for judging (``robustlab.evaluation.judge``).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# the reduced precision of the GPU path: bf16 keeps fp32's exponent range, so no loss scaling
AMP_DTYPE = torch.bfloat16
# AutocastModel's near-tie band, relative to 1 + max |logit|: several times the bf16 error
TIE_GUARD = 0.05


class AutocastModel(nn.Module):
    """``model`` run under autocast to ``dtype``, with float32 logits out.

    The wrapped model keeps its fp32 weights (autocast casts per operation), so ``.model`` is
    the exact fp32 model for re-checking what a bf16 pass found. ``tie_guard``: an attack stops
    an example as soon as its logits say "fooled", so a bf16 near-tie that fp32 would break the
    other way must not reach it. Rows whose two top bf16 logits lie within ``tie_guard`` times
    ``1 + max |logit|`` (bf16 logits of ResNets stray 0.5-2% of that scale from fp32's) get
    their fp32 values, with the bf16 pass's gradient (eval mode only: in train mode a sub-batch
    would change the batch statistics). 0 turns the guard off.
    """

    def __init__(
        self, model: nn.Module, dtype: torch.dtype = AMP_DTYPE, tie_guard: float = TIE_GUARD
    ) -> None:
        super().__init__()
        self.model, self.dtype, self.tie_guard = model, dtype, float(tie_guard)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The logits of ``images`` computed under autocast, as float32 (near-ties in fp32)."""
        with torch.autocast(images.device.type, dtype=self.dtype):
            logits = self.model(images).float()
        if self.tie_guard <= 0 or self.model.training or logits.shape[1] < 2:
            return logits
        with torch.no_grad():
            top = logits.topk(2, dim=1).values
            near = top[:, 0] - top[:, 1] <= self.tie_guard * (1 + logits.abs().amax(dim=1))
            if not near.any():
                return logits
            with torch.autocast(images.device.type, enabled=False):
                exact = self.model(images[near].float()).float()
            shift = torch.zeros_like(logits)
            shift[near] = exact - logits[near]
        # fp32 values where they decide, the bf16 pass's gradient everywhere (straight through)
        return logits + shift


def amp_dtype(enabled: bool, device: torch.device, what: str = "amp") -> torch.dtype | None:
    """bf16 when ``enabled`` on CUDA, else None (fp32); a CPU run says so once in the log,
    so that an ``amp=true`` carried over from a GPU recipe is never silently ignored."""
    if not enabled:
        return None
    if device.type == "cuda":
        return AMP_DTYPE
    log.info("%s=true applies on CUDA only: running in fp32 on %s", what, device.type)
    return None


def crafting_model(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """The model attacks should craft on: ``model`` itself, or its autocast copy."""
    return model if dtype is None else AutocastModel(model, dtype)


def prepare_model(model: nn.Module, device: torch.device, compile: bool = False) -> nn.Module:
    """Channels-last weights on CUDA (convolutions then run in the layout tensor cores use) and,
    with ``compile``, ``torch.compile`` in place (the state dict keeps its keys). On a CPU the
    model is left as it is, eager (the log says so when ``compile`` was asked for): compiling
    would cost minutes for little gain there."""
    if compile and device.type != "cuda":
        log.info("compile=true applies on CUDA only: running %s eagerly", device.type)
    if device.type != "cuda":
        return model
    model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model


__all__ = [
    "AMP_DTYPE",
    "TIE_GUARD",
    "AutocastModel",
    "amp_dtype",
    "crafting_model",
    "prepare_model",
]
