"""Model plumbing for the detector: eval mode, device, pooled per-stage features, batching."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robustlab.errors import ConfigError
from robustlab.runtime import progress


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode with parameters frozen; every module's mode and flag is restored on exit.

    Freezing means input gradients never build weight-gradient graphs and ``.grad`` of the
    parameters stays exactly as the caller left it.
    """
    flags = [(module, module.training) for module in model.modules()]
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for param in frozen:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for param in frozen:
            param.requires_grad_(True)
        for module, flag in flags:
            module.training = flag


def pooled_features(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Global-average-pooled features ``(N, C_l)`` of every stage of ``model.forward_features``."""
    if not hasattr(model, "forward_features"):
        raise ConfigError(
            f"{type(model).__name__} has no forward_features(x) -> list[Tensor]: the Mahalanobis "
            "detector needs the per-stage feature maps (robustlab models provide them)"
        )
    maps = model.forward_features(images)
    return pool_maps([maps] if isinstance(maps, torch.Tensor) else maps)


def pool_maps(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Global average pooling of (N, C, H, W) maps to (N, C); (N, D) features pass through."""
    return [m.flatten(2).mean(2) if m.ndim > 2 else m.reshape(len(m), -1) for m in maps]


def batches(
    images: torch.Tensor, batch_size: int, device: torch.device, desc: str
) -> Iterator[torch.Tensor]:
    """Consecutive slices of ``images`` moved to ``device``, behind a progress bar."""
    total = (len(images) + batch_size - 1) // batch_size
    for start in progress(range(0, len(images), batch_size), desc=desc, total=total):
        yield images[start : start + batch_size].detach().to(device, torch.float32)
