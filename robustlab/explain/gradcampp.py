"""Grad-CAM++ (Chattopadhay et al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep
Convolutional Networks"); captum does not have it.

With g = d Y_c / d A for the class score Y_c and S = exp(Y_c) (the paper's choice, which gives
closed-form higher derivatives), the pixel weights are
alpha_kij = g^2 / (2 g^2 + sum_ab A_kab g^3) and the channel weights
w_k = sum_ij alpha_kij ReLU(g_kij); the map is ReLU(sum_k w_k A_k), upsampled bilinearly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.explain.layers import activations_and_grads, resolve_layer, upsample
from robustlab.explain.registry import register_attribution


@register_attribution("gradcampp")
def gradcam_plus_plus(
    model: nn.Module,
    images: Tensor,
    target: Tensor,
    *,
    stage: int = -1,
    layer: nn.Module | None = None,
) -> Tensor:
    """(N, H, W) Grad-CAM++ maps of the ``target`` class at the input resolution."""
    module = resolve_layer(model, stage, layer)
    acts, grads = activations_and_grads(model, images, target, module)
    grads2, grads3 = grads.pow(2), grads.pow(3)
    denominator = 2 * grads2 + acts.sum(dim=(2, 3), keepdim=True) * grads3
    # where g = 0 the weight is 0 (0/0 in the formula); guard the division only there
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(grads != 0, grads2 / safe, torch.zeros_like(grads))
    weights = (alpha * grads.clamp_min(0)).sum(dim=(2, 3))
    maps = torch.einsum("nk,nkhw->nhw", weights, acts).clamp_min(0)
    return upsample(maps, tuple(images.shape[-2:]))
