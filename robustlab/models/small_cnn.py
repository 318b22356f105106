"""A small two-stage CNN for MNIST-sized (and 8x8 digits) inputs; quick to train and attack."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustlab.errors import ConfigError
from robustlab.models.base import ClassifierHead, FeatureClassifier
from robustlab.models.layers.blocks import conv3x3
from robustlab.models.registry import register_model


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [conv3x3(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class SmallCNN(FeatureClassifier):
    """Two stages of (conv-BN-ReLU) x2 + 2x2 max-pool, then global pooling and a linear head.

    Max-pooling uses ``ceil_mode`` so odd or tiny inputs (down to 1x1) never shrink to zero.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        *,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        widths: Sequence[int] = (32, 64),
        dropout: float = 0.0,
    ):
        super().__init__(num_classes, in_channels, mean, std)
        if len(widths) == 0 or any(w < 1 for w in widths):
            raise ConfigError(f"small_cnn widths must be a non-empty list of ints >= 1: {widths}")
        channels = in_channels
        for width in widths:
            self.stages.append(
                nn.Sequential(
                    *_conv_bn_relu(channels, width),
                    *_conv_bn_relu(width, width),
                    nn.MaxPool2d(2, ceil_mode=True),
                )
            )
            channels = width
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = list(widths)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


@register_model("small_cnn")
def small_cnn(
    num_classes: int,
    in_channels: int,
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    widths: Sequence[int] = (32, 64),
    dropout: float = 0.0,
) -> SmallCNN:
    """Small CNN for MNIST / digits; ``widths`` sets the channels of the two stages,
    ``dropout`` the head's dropout rate (0 = none)."""
    return SmallCNN(
        num_classes,
        in_channels,
        mean=mean,
        std=std,
        widths=tuple(int(w) for w in widths),
        dropout=dropout,
    )
