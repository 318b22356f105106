"""Model plumbing for the detector: pooled per-stage features and batching."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import torch
from torch import nn

from robustlab.errors import ConfigError
from robustlab.models.inference import model_context, model_device
from robustlab.progress import progress


def frozen_eval(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Eval mode with parameters frozen, everything restored on exit (the attacks' context)."""
    return model_context(model, "eval")


def stage_maps(model: nn.Module, images: torch.Tensor, needed_by: str) -> list[torch.Tensor]:
    """``model.forward_features(images)`` as a list (one map per stage); a model without it is
    one clear error naming the detector (``needed_by``) that needs it."""
    if not hasattr(model, "forward_features"):
        raise ConfigError(
            f"{type(model).__name__} has no forward_features(x) -> list[Tensor]: {needed_by} "
            "needs the per-stage feature maps (robustlab models provide them)"
        )
    maps = model.forward_features(images)
    return [maps] if isinstance(maps, torch.Tensor) else list(maps)


def pooled_features(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Global-average-pooled features ``(N, C_l)`` of every stage of ``model.forward_features``."""
    return pool_maps(stage_maps(model, images, "the Mahalanobis detector"))


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


def probe_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """One all-zero input of ``input_shape`` on the model's device (to read feature widths)."""
    return torch.zeros(1, *input_shape, device=model_device(model))
