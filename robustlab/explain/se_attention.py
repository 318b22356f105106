"""Squeeze-and-Excitation channel attention under attack.

Forward hooks read the excitation s = sigmoid(fc2(...)) of every ``SqueezeExcite`` block, the
exact vector the block multiplies its input by, on clean and adversarial inputs; the model's
forward pass is unchanged. Per block: mean |s_adv - s_clean|, the cosine between the two
vectors, the channels that move most, and the per-class correlation between channels
(Hu et al. 2018 analyse s per class to show that deep blocks become class-specific).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.models.layers.squeeze_excite import SqueezeExcite
from robustlab.models.runtime import model_context, model_device


def se_blocks(model: nn.Module) -> dict[str, SqueezeExcite]:
    """Every SE block of the model by module name, in forward order; empty without SE."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcite)}


@torch.no_grad()
def record_excitations(
    model: nn.Module, images: Tensor, batch_size: int = 256
) -> dict[str, Tensor]:
    """Excitation vectors (N, C) per SE block, on CPU, in eval mode; ``{}`` for a model
    without SE blocks."""
    blocks = se_blocks(model)
    records: dict[str, list[Tensor]] = {name: [] for name in blocks}
    # fc2's output is the pre-sigmoid gate; SqueezeExcite.gate applies exactly this sigmoid
    handles = [
        block.fc2.register_forward_hook(
            lambda _m, _i, out, key=name: records[key].append(out.sigmoid().cpu())
        )
        for name, block in blocks.items()
    ]
    device = model_device(model)
    try:
        with model_context(model, "eval"):
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size].to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(chunks) for name, chunks in records.items() if chunks}


def stage_of(block_name: str) -> str:
    """ "stages.2.1.se" -> "2"; names outside ``stages`` are their own group."""
    parts = block_name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "stages" else block_name


def channel_correlation(excitations: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(K, C, C) Pearson correlation between channels of s over the examples of each class;
    NaN for a class with fewer than 3 examples, 0 where a channel is constant."""
    channels = excitations.shape[1]
    out = torch.full((num_classes, channels, channels), float("nan"))
    for cls in range(num_classes):
        group = excitations[labels == cls].double()
        if len(group) < 3:
            continue
        std = group.std(dim=0, unbiased=False)
        z = (group - group.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
        z[:, std == 0] = 0.0
        out[cls] = (z.T @ z / len(group)).float()
    return out
