"""One entry point for every attribution method: ``attribute(model, images, method=...)``.

Each method lives in its own module as ``fn(model, images, target, **options) -> (N, H, W)``,
registered by name (``robustlab.explain.registry``); this module resolves the target class,
batches, runs the model in eval mode with its parameters frozen (nothing accumulates in
``.grad``) and keeps everything on the model's device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.explain.registry import create_attribution, ranks_by_magnitude
from robustlab.inputs import check_images, model_dtype
from robustlab.models.inference import model_context, model_device
from robustlab.progress import progress


def importance(maps: Tensor, method: str) -> Tensor:
    """The values a method's pixels are ranked by: |map| for signed gradient methods."""
    return maps.abs() if ranks_by_magnitude(method) else maps


def resolve_target(
    model: nn.Module, images: Tensor, target: int | Tensor | None, num_classes: int | None = None
) -> Tensor:
    """Target classes (N,) int64 on the images' device; ``None`` = the predicted class."""
    if target is None:
        with torch.no_grad():
            return model(images).argmax(1)
    target = torch.as_tensor(target, dtype=torch.long, device=images.device)
    if target.ndim == 0:
        target = target.expand(len(images))
    if target.shape != (len(images),):
        raise ConfigError(f"target must be an int or shape ({len(images)},), got {target.shape}")
    if (
        num_classes is not None
        and len(target)
        and not 0 <= int(target.min()) <= int(target.max()) < num_classes
    ):
        raise ConfigError(f"target classes must lie in [0, {num_classes}), got {target.tolist()}")
    return target


def attribute(
    model: nn.Module,
    images: Tensor,
    target: int | Tensor | None = None,
    *,
    method: str = "saliency",
    batch_size: int = 128,
    **options: object,
) -> Tensor:
    """Attribution maps (N, H, W) of ``target`` (default: the predicted class) for [0, 1] images.

    ``method``: saliency, smoothgrad, ig, cam, gradcam, gradcampp or any registered one (see
    [`list_attributions`][robustlab.explain.list_attributions]); ``options`` are that method's (see
    [`attribution_options`][robustlab.explain.attribution_options]), e.g. ``steps`` for ig or
    ``stage`` for gradcam. Raw values, on the model's device; normalise only for display.
    """
    fn = create_attribution(method, **options)
    check_images(images, dtype=model_dtype(model))
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    device = model_device(model)
    images = images.to(device)
    chunks = []
    with model_context(model, "eval"):
        if target is not None:
            target = resolve_target(model, images, target, getattr(model, "num_classes", None))
        starts = range(0, len(images), batch_size)
        for start in progress(starts, f"explain {method}", total=len(starts)):
            # inputs that already require grad keep captum from warning that it had to set it
            batch = images[start : start + batch_size].detach().requires_grad_(True)
            given = None if target is None else target[start : start + batch_size]
            classes = resolve_target(model, batch, given)
            chunks.append(fn(model, batch, classes).detach())
    if not chunks:
        return images.new_zeros((0, *images.shape[-2:]))
    return torch.cat(chunks)
