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

from robustlab.models.inference import model_context, model_device
from robustlab.models.layers.squeeze_excite import SqueezeExcite

CONSTANT_TOLERANCE = 1e-6  # an excitation range below this is float rounding


def se_blocks(model: nn.Module) -> dict[str, SqueezeExcite]:
    """Every SE block of the model by module name, in forward order; empty without SE."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcite)}


# What the hooks keep of each SE block: its excitation s = sigmoid(fc2(...)) (SqueezeExcite.gate
# applies exactly this sigmoid to fc2's output) and which bottleneck units pass fc1's ReLU.
EXCITATION = (lambda block: block.fc2, torch.sigmoid)
ACTIVE = (lambda block: block.fc1, lambda out: out > 0)


@torch.no_grad()
def record_excitations(
    model: nn.Module, images: Tensor, batch_size: int = 256
) -> dict[str, Tensor]:
    """Excitation vectors (N, C) per SE block, on CPU, in eval mode; ``{}`` for a model
    without SE blocks."""
    return _record(model, images, batch_size, [EXCITATION])[0]


@torch.no_grad()
def record_hidden_activity(
    model: nn.Module, images: Tensor, batch_size: int = 256
) -> dict[str, Tensor]:
    """Per SE block, which bottleneck units pass the ReLU (N, hidden) booleans, on CPU."""
    return _record(model, images, batch_size, [ACTIVE])[0]


@torch.no_grad()
def record_se_activity(
    model: nn.Module, images: Tensor, batch_size: int = 256
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Excitations and hidden activity of every SE block, from one pass over ``images``."""
    excitations, active = _record(model, images, batch_size, [EXCITATION, ACTIVE])
    return excitations, active


def dead_blocks(excitations: dict[str, Tensor], active: dict[str, Tensor]) -> list[str]:
    """SE blocks whose excitation does not depend on the input, by name.

    A block is dead when no hidden unit passes its ReLU for any of the recorded inputs (its
    gate is then sigmoid(fc2.bias) for every input) or when its excitation has zero variance
    over them (every channel's range under ``CONSTANT_TOLERANCE``: identical rows of a batch
    may differ in float rounding).
    """
    return [
        name
        for name, gates in excitations.items()
        if not bool(active[name].any())
        or bool((gates.amax(0) - gates.amin(0) <= CONSTANT_TOLERANCE).all())
    ]


def dead_se_blocks(model: nn.Module, images: Tensor, batch_size: int = 256) -> list[str]:
    """The dead SE blocks (``dead_blocks``) of ``model`` over ``images``."""
    return dead_blocks(*record_se_activity(model, images, batch_size))


def _record(model, images, batch_size, taps) -> list[dict[str, Tensor]]:
    """Run ``model`` over ``images`` once with a forward hook on ``tap(block)`` of every SE
    block per ``(tap, transform)`` of ``taps``; per tap, ``transform(output)`` by block."""
    blocks = se_blocks(model)
    records = [{name: [] for name in blocks} for _ in taps]
    handles = [
        tap(block).register_forward_hook(
            lambda _m, _i, out, kept=kept, key=name, keep=transform: kept[key].append(
                keep(out).cpu()
            )
        )
        for (tap, transform), kept in zip(taps, records, strict=True)
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
    return [
        {name: torch.cat(chunks) for name, chunks in kept.items() if chunks} for kept in records
    ]


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
