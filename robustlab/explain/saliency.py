"""Saliency map (Simonyan, Vedaldi and Zisserman 2014, "Deep Inside Convolutional Networks").

|d f_c / d x|, the largest absolute gradient over the colour channels at each pixel. Unsigned.
Computed with captum's ``Saliency``.
"""

from __future__ import annotations

from captum.attr import Saliency
from torch import Tensor, nn

from robustlab.explain.registry import register_attribution


@register_attribution("saliency")
def saliency(model: nn.Module, images: Tensor, target: Tensor) -> Tensor:
    """(N, H, W) maps: max over channels of |grad of the target logit|."""
    grads = Saliency(model).attribute(images, target=target, abs=True)
    return grads.amax(dim=1)
