"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization").

ReLU(sum_k alpha_k A_k) with alpha_k the spatial mean of d logit_c / d A_k, A the output of a
stage (``stage``, default the last) or of any module (``layer``); upsampled bilinearly to the
input. Computed with captum's ``LayerGradCam``. ``relu=False`` keeps the signed map: for a
global-average-pooling + linear head it is then CAM / (h w) exactly.
"""

from __future__ import annotations

from captum.attr import LayerGradCam
from torch import Tensor, nn

from robustlab.explain.layers import resolve_layer, upsample
from robustlab.explain.registry import register_attribution


@register_attribution("gradcam")
def gradcam(
    model: nn.Module,
    images: Tensor,
    target: Tensor,
    *,
    stage: int = -1,
    layer: nn.Module | None = None,
    relu: bool = True,
) -> Tensor:
    """(N, H, W) Grad-CAM maps of the ``target`` class at the input resolution."""
    module = resolve_layer(model, stage, layer)
    maps = LayerGradCam(model, module).attribute(
        images, target=target, relu_attributions=relu, attr_dim_summation=True
    )
    return upsample(maps[:, 0].detach(), tuple(images.shape[-2:]))
