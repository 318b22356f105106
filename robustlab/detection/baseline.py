"""Maximum-softmax-probability baseline of Hendrycks & Gimpel (2017), "A Baseline for
Detecting Misclassified and Out-of-Distribution Examples in Neural Networks"
[https://arxiv.org/abs/1610.02136], as an adversarial-ness score."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.detection.features import batches, frozen_eval
from robustlab.models.inference import model_device


def msp_score(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``-log max softmax probability`` per example (CPU, ``(N,)``): higher = more adversarial.

    It ranks examples exactly like ``1 - MSP`` (so every ranking metric is the same) but does
    not round to 0 for confident predictions, which would tie them in float32.
    """
    out = []
    with frozen_eval(model), torch.no_grad():
        for x in batches(images, batch_size, model_device(model), "msp scores"):
            out.append(_neg_log_msp(model(x).float()).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _neg_log_msp(logits: torch.Tensor) -> torch.Tensor:
    # log(1 + sum_{j != top} exp(z_j - z_top)): exact for tiny values, where
    # logsumexp(z) - max(z) would cancel to 0.
    top = logits.argmax(dim=1, keepdim=True)
    others = (logits - logits.gather(1, top)).scatter(1, top, float("-inf"))
    return torch.log1p(others.exp().sum(dim=1))
