"""Explanation faithfulness by deletion and insertion (Petsiuk, Das and Saenko 2018, "RISE").

Deletion: replace the most important pixels first (all channels of a pixel together) with a
baseline and follow the probability of the explained class; a faithful map makes it fall fast
(low AUC). Insertion: start from the baseline and put the most important pixels back; a faithful
map makes it rise fast (high AUC). Curves have ``steps`` + 1 points over the fraction of pixels
changed, integrated with the trapezoidal rule over [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.models.inference import model_context, model_device


@dataclass
class FaithfulnessCurves:
    """Per-example deletion and insertion curves (N, steps + 1) and their AUCs (N,)."""

    fractions: Tensor
    deletion: Tensor
    insertion: Tensor

    @property
    def deletion_auc(self) -> Tensor:
        return torch.trapezoid(self.deletion, self.fractions, dim=1)

    @property
    def insertion_auc(self) -> Tensor:
        return torch.trapezoid(self.insertion, self.fractions, dim=1)


def pixel_order(importance: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Pixel indices (N, H*W) from most to least important; ties in random order, so that a
    flat region is not removed top-left first."""
    flat = importance.detach().flatten(1).cpu()
    shuffle = torch.randperm(flat.shape[1], generator=generator)
    order = flat[:, shuffle].argsort(dim=1, descending=True, stable=True)
    return shuffle[order]


def _masks(order: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """Boolean masks (steps + 1, N, H*W): the first round(t/steps * P) pixels of each order."""
    n, pixels = order.shape
    counts = torch.round(torch.linspace(0, pixels, steps + 1)).long()
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels).expand(n, pixels).contiguous())
    return rank[None] < counts[:, None, None], counts.float() / pixels


@torch.no_grad()
def _class_probability(model: nn.Module, images: Tensor, target: Tensor, batch_size: int) -> Tensor:
    probs = [
        model(images[i : i + batch_size]).softmax(1).gather(1, target[i : i + batch_size, None])
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(probs)[:, 0]


def deletion_insertion(
    model: nn.Module,
    images: Tensor,
    importance: Tensor,
    target: Tensor,
    *,
    steps: int = 16,
    baseline: float | Tensor = 0.0,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
) -> FaithfulnessCurves:
    """Deletion and insertion curves of the ``target`` probability for maps ``importance``
    (N, H, W), ranked by value (pass |map| for signed methods)."""
    if steps < 1:
        raise ConfigError(f"deletion/insertion needs steps >= 1, got {steps}")
    if importance.shape != (images.shape[0], *images.shape[2:]):
        raise ConfigError(
            f"maps {tuple(importance.shape)} do not match images {tuple(images.shape)}"
        )
    device = model_device(model)
    images, target = images.to(device), target.to(device)
    base = torch.as_tensor(baseline, dtype=images.dtype, device=device).expand_as(images)
    masks, fractions = _masks(pixel_order(importance, generator), steps)
    masks = masks.to(device).view(steps + 1, len(images), 1, *images.shape[2:])
    deleted = torch.where(masks, base[None], images[None]).flatten(0, 1)
    inserted = torch.where(masks, images[None], base[None]).flatten(0, 1)
    repeated = target.repeat(steps + 1)
    with model_context(model, "eval"):
        curves = [
            _class_probability(model, batch, repeated, batch_size).view(steps + 1, -1).T.cpu()
            for batch in (deleted, inserted)
        ]
    return FaithfulnessCurves(fractions.expand(len(images), -1), curves[0], curves[1])
