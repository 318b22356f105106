"""Integrated Gradients (Sundararajan, Taly and Yan 2017, "Axiomatic Attribution for Deep
Networks").

(x - x') * integral_0^1 d f_c(x' + a (x - x')) / dx da, with the integral approximated by
``steps`` Gauss-Legendre points (captum's ``IntegratedGradients``), summed over colour channels.
Signed. Completeness: the map sums to f_c(x) - f_c(x');
[`completeness_error`][robustlab.explain.completeness_error] measures how far the approximation is
from that, to choose ``steps``.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.explain.registry import register_attribution
from robustlab.models.inference import model_context


def _baseline_like(images: Tensor, baseline: float | Tensor) -> Tensor:
    return torch.as_tensor(baseline, dtype=images.dtype, device=images.device).expand_as(images)


@register_attribution("ig", rank_by_magnitude=True)
def integrated_gradients(
    model: nn.Module,
    images: Tensor,
    target: Tensor,
    *,
    steps: int = 32,
    baseline: float | Tensor = 0.0,
) -> Tensor:
    """(N, H, W) maps from baseline ``baseline`` (a value or an image; 0 = black)."""
    if steps < 1:
        raise ConfigError(f"integrated gradients needs steps >= 1, got {steps}")
    attributions = IntegratedGradients(model).attribute(
        images,
        baselines=_baseline_like(images, baseline),
        target=target,
        n_steps=steps,
        method="gausslegendre",
        internal_batch_size=len(images) * steps,
    )
    return attributions.sum(dim=1)


@torch.no_grad()
def completeness_error(
    model: nn.Module,
    images: Tensor,
    maps: Tensor,
    target: Tensor,
    *,
    baseline: float | Tensor = 0.0,
) -> Tensor:
    """Per example |sum(map) - (f_c(x) - f_c(x'))| / |f_c(x) - f_c(x')| (the axiom's gap)."""
    index = target[:, None]
    with model_context(model, "eval"):
        gain = model(images).gather(1, index)
        gain = gain - model(_baseline_like(images, baseline)).gather(1, index)
    gain = gain[:, 0]
    return (maps.flatten(1).sum(1) - gain).abs() / gain.abs().clamp_min(1e-12)
