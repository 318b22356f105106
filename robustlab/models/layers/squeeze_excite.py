"""Squeeze-and-Excitation channel gating (Hu, Shen and Sun, CVPR 2018).

squeeze: global average pooling of each channel, z = mean_{h,w} u;
excitation: s = sigmoid(W2 relu(W1 z)), W1: C -> C/r, W2: C/r -> C;
scale: u * s, broadcast over the spatial positions.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.errors import ConfigError


class SqueezeExcite(nn.Module):
    """Channel attention; ``reduction`` is r, the hidden width is ``max(1, channels // r)``."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if channels < 1:
            raise ConfigError(f"SqueezeExcite needs channels >= 1, got {channels}")
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
            raise ConfigError(f"se_reduction must be an integer >= 1, got {reduction!r}")
        self.channels = channels
        self.reduction = reduction
        self.hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, self.hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(self.hidden, channels)

    def gate(self, x: Tensor) -> Tensor:
        """Per-example, per-channel weights in (0, 1), shape (N, C)."""
        z = x.mean(dim=(2, 3))
        return self.fc2(self.relu(self.fc1(z))).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, hidden={self.hidden}"
