"""Per-channel input normalisation kept inside the model, as RobustBench models do.

Attacks and data loaders work in [0, 1] pixel space; keeping mean/std as buffers means the
epsilon of an attack is always measured in that space and the statistics travel with the
checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError

ChannelStats = float | Sequence[float] | Tensor | None


def _channel_vector(value: ChannelStats, default: float, in_channels: int, what: str) -> Tensor:
    """Turn None / a scalar / a sequence into a float32 vector of length ``in_channels``.

    Built on the CPU even under ``with torch.device("meta")``, so the checks below can read it.
    """
    if value is None:
        return torch.full((in_channels,), float(default), device="cpu")
    vec = torch.as_tensor(value, dtype=torch.float32, device="cpu").detach().flatten().clone()
    if vec.numel() == 1:
        return vec.expand(in_channels).clone()
    if vec.numel() != in_channels:
        raise ConfigError(
            f"{what} has {vec.numel()} values but the model has {in_channels} input channels; "
            f"give one value per channel or a single value for all"
        )
    return vec


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``mean=None`` means 0 and ``std=None`` means 1."""

    def __init__(self, in_channels: int, mean: ChannelStats = None, std: ChannelStats = None):
        super().__init__()
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        mean_vec = _channel_vector(mean, 0.0, in_channels, "mean")
        std_vec = _channel_vector(std, 1.0, in_channels, "std")
        if not torch.isfinite(mean_vec).all():
            raise ConfigError(f"mean must be finite, got {mean_vec.tolist()}")
        if not (torch.isfinite(std_vec).all() and (std_vec > 0).all()):
            raise ConfigError(f"std must be finite and > 0, got {std_vec.tolist()}")
        self.in_channels = in_channels
        self.register_buffer("mean", mean_vec.view(1, in_channels, 1, 1))
        self.register_buffer("std", std_vec.view(1, in_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = [round(v, 4) for v in self.mean.flatten().tolist()]
        std = [round(v, 4) for v in self.std.flatten().tolist()]
        return f"mean={mean}, std={std}"


NO_PREPROCESSING = "none: the model takes [0, 1] images"


def describe_preprocessing(model: nn.Module) -> str:
    """What ``model`` does to its [0, 1] inputs before its layers, for an evaluation card: the
    per-channel normalisation of its first `Normalize` layer, or none."""
    for module in model.modules():
        if isinstance(module, Normalize):
            return f"normalised inside the model: (x - mean) / std, {module.extra_repr()}"
    return NO_PREPROCESSING
