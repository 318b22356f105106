"""An attack copy of a model with every convolution's BatchNorm folded into its weights.

In eval mode a BatchNorm is a per-channel affine map, so it folds exactly into the weights and
bias of the convolution (or linear layer) that feeds it (``torch.fx``'s ``fuse``). An attack
spends nearly all its time in forward+backward passes to the input, and the folded copy runs
them with fewer layers: ``scripts/bench_eval.py`` prints a bare forward+backward on the model
over one on its folded copy, timed alternately (1.38x on resnet20 digits, 256 rows, one
thread). On the CPU the copy can also hold its weights channels-last, whose convolutions were
up to 6% faster there at these shapes (``bench_eval.py`` prints that ratio too). The logits agree to
float rounding; the copy is checked on a probe batch, and anything that cannot be traced or
does not agree falls back to the model itself. Breaks found on the copy are judged on the
original model (see ``robustlab.evaluation.suite.worst_case``), so rounding never counts as a
success.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from robustlab.models.inference import model_context

log = logging.getLogger(__name__)

# Logits of the folded copy may differ from the original's by float rounding only.
_TOLERANCE = 1e-4


def _batchnorm_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fold_batchnorm(model: nn.Module, probe: torch.Tensor, channels_last: bool = False) -> nn.Module:
    """A frozen eval-mode copy of ``model`` with BatchNorm folded into the layers before it,
    or ``model`` itself when nothing folds, the model cannot be traced, or the copy's logits
    on ``probe`` (a batch of valid inputs on the model's device) differ beyond rounding.
    ``channels_last``: the copy's 4-d weights are stored channels-last (the model's never are).

    The copy is a snapshot: it does not follow later changes to the model's weights.
    """
    if _batchnorm_count(model) == 0:
        return model
    with model_context(model, "eval"):
        try:
            folded = fuse(model)
        # Tracing fails on data-dependent control flow, with an error type per construct;
        # any failure only means this model is attacked as it is.
        except Exception as err:
            log.debug("BatchNorm folding skipped, the model is attacked as it is: %r", err)
            return model
        folded.eval().requires_grad_(False)
        if _batchnorm_count(folded) == _batchnorm_count(model):
            return model
        if channels_last:
            folded.to(memory_format=torch.channels_last)
        with torch.no_grad():
            expected, got = model(probe), folded(probe)
    scale = 1.0 + float(expected.abs().max()) if expected.numel() else 1.0
    if got.shape != expected.shape or float((got - expected).abs().max()) > _TOLERANCE * scale:
        return model
    return folded


__all__ = ["fold_batchnorm"]
