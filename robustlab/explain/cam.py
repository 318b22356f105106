"""Class Activation Mapping (Zhou et al. 2016, "Learning Deep Features for Discriminative
Localization").

For a head that is global average pooling + linear, logit_c = mean_{i,j} CAM_c(i, j) + b_c with
CAM_c = sum_k w_{c,k} A_k, A the last stage's features: the map decomposes the logit exactly.
Signed (negative where a region argues against the class); upsampled bilinearly to the input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.explain.layers import linear_head, upsample
from robustlab.explain.registry import register_attribution


@register_attribution("cam")  # signed, but ranked by value: evidence for the class first
def class_activation_map(model: nn.Module, images: Tensor, target: Tensor) -> Tensor:
    """(N, H, W) CAM of the ``target`` class at the input resolution."""
    weights = linear_head(model).weight
    with torch.no_grad():
        features = model.forward_features(images)[-1]
        maps = torch.einsum("nk,nkhw->nhw", weights[target], features)
    return upsample(maps, tuple(images.shape[-2:]))
