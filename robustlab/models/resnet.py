"""One ResNet family: CIFAR ResNet-20/32/56 and PreAct ResNet-18, with or without SE.

SE-ResNets are the same class with ``se_reduction=r`` (Hu et al. 2018), not a separate
architecture, so baseline and SE models differ only in that one option.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustlab.errors import ConfigError
from robustlab.models.base import ClassifierHead, FeatureClassifier, kaiming_init
from robustlab.models.layers.blocks import BLOCKS, conv3x3
from robustlab.models.registry import register_model

Stats = float | Sequence[float] | None


class ResNet(FeatureClassifier):
    """Residual network of ``block`` ("basic" post-activation or "preact") blocks.

    ``layers[i]`` blocks of width ``widths[i]`` per stage; stage strides are 1, 2, 2, ...
    ``stem`` is "cifar" (3x3 conv, stride 1) or "imagenet" (7x7 conv stride 2 + max-pool).
    ``dropout`` is the head's dropout rate (0 = none; see ``ClassifierHead``);
    ``block_dropout`` the rate inside each block, between its two convolutions (WideResNet).
    ``stem_width`` (default ``widths[0]``) is the stem's output width; a WideResNet's 16-channel
    stem feeds a wider first stage.
    """

    def __init__(
        self,
        block: str = "basic",
        layers: Sequence[int] = (3, 3, 3),
        widths: Sequence[int] = (16, 32, 64),
        *,
        stem: str = "cifar",
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Stats = None,
        std: Stats = None,
        se_reduction: int | None = None,
        dropout: float = 0.0,
        block_dropout: float = 0.0,
        stem_width: int | None = None,
    ):
        super().__init__(num_classes, in_channels, mean, std)
        _validate(block, layers, widths, stem)
        if isinstance(block_dropout, bool) or not 0.0 <= float(block_dropout) < 1.0:
            raise ConfigError(f"block_dropout must be a rate in [0, 1), got {block_dropout!r}")
        channels = widths[0] if stem_width is None else stem_width
        block_cls = BLOCKS[block]
        preact = block == "preact"
        self.block_type, self.se_reduction = block, se_reduction
        self.stem = _make_stem(stem, in_channels, channels, with_bn_relu=not preact)
        for index, (depth, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = []
            for b in range(depth):
                block_stride = stride if b == 0 else 1
                blocks.append(
                    block_cls(
                        channels,
                        width,
                        block_stride,
                        se_reduction=se_reduction,
                        dropout=block_dropout,
                    )
                )
                channels = width
            self.stages.append(nn.Sequential(*blocks))
        if preact:
            # Pre-activation blocks end on an addition; the paper adds a final BN-ReLU.
            self.final_act = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        self.head = ClassifierHead(channels, num_classes, dropout)
        self.num_features = list(widths)
        kaiming_init(self)


def _validate(block: str, layers: Sequence[int], widths: Sequence[int], stem: str) -> None:
    if block not in BLOCKS:
        raise ConfigError(f"unknown ResNet block '{block}'; valid: {', '.join(BLOCKS)}")
    if stem not in ("cifar", "imagenet"):
        raise ConfigError(f"unknown ResNet stem '{stem}'; valid: cifar, imagenet")
    if len(layers) == 0 or len(layers) != len(widths):
        raise ConfigError(
            f"ResNet needs one width per stage: got {len(layers)} stages, {len(widths)} widths"
        )
    if any(n < 1 for n in layers) or any(w < 1 for w in widths):
        raise ConfigError(f"ResNet blocks and widths must be >= 1, got {layers} / {widths}")


def _make_stem(stem: str, in_channels: int, width: int, with_bn_relu: bool) -> nn.Module:
    if stem == "cifar":
        modules: list[nn.Module] = [conv3x3(in_channels, width)]
    else:
        modules = [nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)]
    if with_bn_relu:
        modules += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    if stem == "imagenet":
        modules.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*modules)


def _scaled(widths: Sequence[int], width: float) -> list[int]:
    if not width > 0:
        raise ConfigError(f"width multiplier must be > 0, got {width}")
    return [max(1, round(w * width)) for w in widths]


def _factory(block: str, layers: tuple[int, ...], widths: tuple[int, ...], se_default: int | None):
    """A registered ResNet: ``block`` blocks, ``layers`` of them per stage of ``widths``
    channels (scaled by the ``width`` option); SE on by default when ``se_default`` is set."""

    def factory(
        num_classes: int,
        in_channels: int,
        *,
        mean: Stats = None,
        std: Stats = None,
        se_reduction: int | None = se_default,
        width: float = 1.0,
        stem: str = "cifar",
        dropout: float = 0.0,
    ) -> ResNet:
        return ResNet(
            block,
            layers,
            _scaled(widths, width),
            stem=stem,
            num_classes=num_classes,
            in_channels=in_channels,
            mean=mean,
            std=std,
            se_reduction=se_reduction,
            dropout=dropout,
        )

    return factory


def _cifar_factory(depth: int, se_default: int | None):
    """Factory for the 6n+2-layer CIFAR ResNet with three stages of 16/32/64 channels."""
    n = (depth - 2) // 6
    factory = _factory("basic", (n,) * 3, (16, 32, 64), se_default)
    factory.__qualname__ = f"{'se_' if se_default else ''}resnet{depth}"
    factory.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2016), {n} basic blocks per stage."
    return factory


def _preact18_factory(se_default: int | None):
    """Factory for PreAct ResNet-18: four stages of 64/128/256/512 channels, two blocks each."""
    factory = _factory("preact", (2, 2, 2, 2), (64, 128, 256, 512), se_default)
    factory.__qualname__ = f"{'se_' if se_default else ''}preact_resnet18"
    factory.__doc__ = "PreAct ResNet-18 (He et al. 2016, identity mappings); `width` scales it."
    return factory


for _depth in (20, 32, 56):
    register_model(f"resnet{_depth}")(_cifar_factory(_depth, None))
    register_model(f"se_resnet{_depth}")(_cifar_factory(_depth, 16))
register_model("preact_resnet18")(_preact18_factory(None))
register_model("se_preact_resnet18")(_preact18_factory(16))
