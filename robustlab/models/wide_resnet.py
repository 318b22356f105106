"""WideResNets (Zagoruyko & Komodakis 2016) in the layout of the TRADES/RobustBench code.

A WRN-d-k is the pre-activation member of the ResNet family: a 16-channel 3x3 stem, three
stages of (d - 4) / 6 wide blocks of 16k/32k/64k channels, a final BN-ReLU, global average
pooling and a linear layer. Keeping it a ``ResNet`` keeps SE (``se_reduction``), head dropout
and ``forward_features`` the same as in the rest of the family.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustlab.errors import ConfigError
from robustlab.models.registry import register_model
from robustlab.models.resnet import ResNet

Stats = float | Sequence[float] | None
STEM_WIDTH = 16


def blocks_per_stage(depth: int) -> int:
    """(depth - 4) / 6 wide blocks per stage; one clear error for a depth of another form."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ConfigError(
            f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 28, 34, 70, ...), got {depth!r}"
        )
    return (depth - 4) // 6


def wide_resnet(
    depth: int,
    widen_factor: int,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Stats = None,
    std: Stats = None,
    se_reduction: int | None = None,
    block_dropout: float = 0.0,
    dropout: float = 0.0,
) -> ResNet:
    """WRN-``depth``-``widen_factor``; ``block_dropout`` is the reference's ``dropRate``."""
    if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
        raise ConfigError(
            f"WideResNet widen_factor must be a positive integer, got {widen_factor!r}"
        )
    n = blocks_per_stage(depth)
    widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
    return ResNet(
        block="preact",
        layers=(n,) * 3,
        widths=widths,
        stem="cifar",
        num_classes=num_classes,
        in_channels=in_channels,
        mean=mean,
        std=std,
        se_reduction=se_reduction,
        dropout=dropout,
        block_dropout=block_dropout,
        stem_width=STEM_WIDTH,
    )


def _wrn_factory(name: str, depth: int, widen_factor: int):
    """Registry factory whose depth and width are options defaulting to WRN-depth-width."""

    def factory(
        num_classes: int,
        in_channels: int,
        *,
        mean: Stats = None,
        std: Stats = None,
        depth: int = depth,
        widen_factor: int = widen_factor,
        se_reduction: int | None = None,
        block_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> ResNet:
        return wide_resnet(
            depth,
            widen_factor,
            num_classes=num_classes,
            in_channels=in_channels,
            mean=mean,
            std=std,
            se_reduction=se_reduction,
            block_dropout=block_dropout,
            dropout=dropout,
        )

    factory.__qualname__ = name
    factory.__doc__ = f"WideResNet, by default WRN-{depth}-{widen_factor}; depth/width are options."
    return factory


register_model("wide_resnet")(_wrn_factory("wide_resnet", 28, 10))
for _depth, _width in ((28, 10), (34, 10), (70, 16)):
    register_model(f"wrn{_depth}_{_width}")(_wrn_factory(f"wrn{_depth}_{_width}", _depth, _width))
