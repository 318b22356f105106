"""Image priors for optimising inputs: total variation and L2, per image.

Both are normalised by the number of pixels, so one ``weight`` means the same on 8x8 digits
and on 32x32 CIFAR images. Total variation is the isotropic one, smoothed by ``smoothing`` so
that it has a gradient everywhere (Mahendran & Vedaldi 2015, "Understanding Deep Image
Representations by Inverting Them", use the same V^beta prior with beta = 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from robustlab.errors import ConfigError

TV_SMOOTHING = 1e-3  # keeps sqrt differentiable where neighbouring pixels are equal


def total_variation(images: Tensor, smoothing: float = TV_SMOOTHING) -> Tensor:
    """Per-image mean of ``sqrt(dx^2 + dy^2 + smoothing^2)`` over pixels and channels.

    ``dx``/``dy`` are forward differences; the last column/row repeats its neighbour's, so a
    constant image has total variation ``smoothing`` exactly.
    """
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    dx = torch.cat([dx, torch.zeros_like(dx[..., :, :1])], dim=-1)
    dy = torch.cat([dy, torch.zeros_like(dy[..., :1, :])], dim=-2)
    return torch.sqrt(dx**2 + dy**2 + smoothing**2).flatten(1).mean(1)


def l2_prior(images: Tensor) -> Tensor:
    """Per-image mean squared distance from mid-grey (0.5): pulls pixels off the box edges."""
    return ((images - 0.5) ** 2).flatten(1).mean(1)


def no_prior(images: Tensor) -> Tensor:
    """No regulariser: zero for every image."""
    return images.new_zeros(len(images))


REGULARIZERS: dict[str, Callable[[Tensor], Tensor]] = {
    "tv": total_variation,
    "l2": l2_prior,
    "none": no_prior,
}


def get_regularizer(name: str) -> Callable[[Tensor], Tensor]:
    """The prior called ``name`` (``"tv"``, ``"l2"`` or ``"none"``), or one clear error."""
    if name not in REGULARIZERS:
        raise ConfigError(f"unknown regularizer {name!r}: choose one of {', '.join(REGULARIZERS)}")
    return REGULARIZERS[name]
