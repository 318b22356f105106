"""SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise").

The input gradient of the target logit averaged over ``samples`` copies of the input with
Gaussian noise of standard deviation ``noise`` (a fraction of the [0, 1] input range; the paper
recommends 10-20%), summed over colour channels. Signed, as in the paper (display takes |.|).
Computed with captum's ``NoiseTunnel`` around ``Saliency``; the noise comes from torch's global
generator, so seed it (``explain_robustness`` does, without disturbing the caller's state).
"""

from __future__ import annotations

from captum.attr import NoiseTunnel, Saliency
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.explain.registry import register_attribution


@register_attribution("smoothgrad", rank_by_magnitude=True)
def smoothgrad(
    model: nn.Module, images: Tensor, target: Tensor, *, samples: int = 16, noise: float = 0.15
) -> Tensor:
    """(N, H, W) maps: mean gradient over ``samples`` noisy copies, summed over channels."""
    if samples < 1 or not noise >= 0:
        raise ConfigError(f"smoothgrad needs samples >= 1 and noise >= 0, got {samples}, {noise}")
    tunnel = NoiseTunnel(Saliency(model))
    grads = tunnel.attribute(
        images,
        nt_type="smoothgrad",
        nt_samples=samples,
        nt_samples_batch_size=samples,
        stdevs=float(noise),
        target=target,
        abs=False,
    )
    return grads.sum(dim=1)
