"""Residual blocks of the ResNet family, each with an optional Squeeze-and-Excitation gate.

SE follows Hu et al. (2018): it rescales the residual branch before the identity is added,
so the shortcut path stays an undisturbed identity (or projection).
"""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.models.layers.squeeze_excite import SqueezeExcite


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm always follows or precedes)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias, used for projection shortcuts."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def _needs_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride != 1 or in_channels != out_channels


def _make_se(channels: int, se_reduction: int | None) -> SqueezeExcite | None:
    return None if se_reduction is None else SqueezeExcite(channels, se_reduction)


def _make_dropout(rate: float) -> nn.Module:
    # Identity at 0: no random draws and the same state dict as a block without the option.
    return nn.Dropout(rate) if rate > 0 else nn.Identity()


class BasicBlock(nn.Module):
    """Post-activation basic block (He et al. 2016, CIFAR variant).

    conv-BN-ReLU [-dropout] -conv-BN [-SE] (+ shortcut) -ReLU. The shortcut is the identity, or
    a 1x1 convolution + BN (option B) when the stride or the width changes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        se_reduction: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dropout = _make_dropout(dropout)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.se = _make_se(out_channels, se_reduction)
        self.shortcut: nn.Module = nn.Identity()
        if _needs_projection(in_channels, out_channels, stride):
            self.shortcut = nn.Sequential(
                conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.dropout(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., "Identity Mappings in Deep Residual Networks").

    BN-ReLU-conv-BN-ReLU [-dropout] -conv [-SE] + shortcut, with no activation after the
    addition. A projection shortcut (1x1 conv) reads the pre-activated input, as in the paper;
    ``dropout`` between the two convolutions is the WideResNet's (Zagoruyko & Komodakis 2016).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        se_reduction: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dropout = _make_dropout(dropout)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.relu = nn.ReLU()
        self.se = _make_se(out_channels, se_reduction)
        self.shortcut: nn.Module | None = None
        if _needs_projection(in_channels, out_channels, stride):
            self.shortcut = conv1x1(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.dropout(self.relu(self.bn2(self.conv1(pre))))
        out = self.conv2(out)
        if self.se is not None:
            out = self.se(out)
        return out + identity


BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "preact": PreActBlock}
