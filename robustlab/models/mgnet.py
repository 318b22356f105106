"""MgNet (He and Xu 2019): a CNN read as a multigrid solver of the data-feature equation A * u = f.

Each grid level l carries a feature ``u`` and a data ``f`` (both ``c_l`` channels).

- Start: ``f = sigma(conv3x3(x))`` (the stem), ``u = 0``.
- Smoothing, ``nu_l`` iterations per level: ``u <- u + sigma(B * sigma(f - A * u))``, where sigma
  is BatchNorm followed by ReLU, every iteration has its own ``B`` and the operator ``A`` is
  shared by all iterations of the level (the constrained data-feature mapping).
- Restriction to the next level, by stride-2 3x3 convolutions, linear as in the paper:
  ``u <- Pi *2 u`` and ``f <- R *2 (f - A * u) + A' * u``, with ``A`` the fine level's operator
  applied to the fine ``u`` and ``A'`` the coarse level's operator applied to the new ``u``.
- Head: global average pooling + linear layer on the last ``u``.

SE (``se_reduction=r``) gates each smoothing branch before it is added to ``u``, as SE-ResNet
gates its residual branch. ``forward_features`` returns the ``u`` of every level.

Parameter count, all kernels 3x3, input channels ``c_0``, widths ``c_1..c_L``, iterations
``nu_l``, ``K`` classes, no SE (convolutions have no bias; BN has 2 per channel)::

    P = 9 c_0 c_1 + 2 c_1                          stem convolution + BN
      + sum_l [ 9 c_l^2 + nu_l (9 c_l^2 + 4 c_l) ]  A_l; B and two BNs per iteration
      + sum_{l >= 2} 18 c_{l-1} c_l                 Pi and R
      + K (c_L + 1)                                 linear head

SE adds ``nu_l (2 c_l h_l + h_l + c_l)`` per level with ``h_l = max(1, c_l // r)``.

Right after a restriction ``f - A' * u = R *2 (f - A * u)``: the coarse ``A'`` cancels in the
first smoothing and acts from the second one on (and, on the finest level, ``u = 0`` makes the
first ``A * u`` vanish). With one iteration on the coarsest level its ``A`` is therefore unused.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.models.base import ClassifierHead, FeatureClassifier, kaiming_init
from robustlab.models.layers.blocks import conv3x3
from robustlab.models.layers.squeeze_excite import SqueezeExcite
from robustlab.models.registry import register_model

Stats = float | Sequence[float] | None


class MgSmoother(nn.Module):
    """One smoothing iteration ``u + sigma(B * sigma(f - A * u))``; ``A`` is given by its level."""

    def __init__(self, channels: int, se_reduction: int | None = None):
        super().__init__()
        self.bn_residual = nn.BatchNorm2d(channels)
        self.conv = conv3x3(channels, channels)  # B
        self.bn_out = nn.BatchNorm2d(channels)
        self.se = None if se_reduction is None else SqueezeExcite(channels, se_reduction)

    def forward(self, u: Tensor, f: Tensor, operator: nn.Module) -> Tensor:
        residual = torch.relu(self.bn_residual(f - operator(u)))
        branch = self.bn_out(self.conv(residual))
        if self.se is not None:
            branch = self.se(branch)
        return u + torch.relu(branch)


class MgLevel(nn.Module):
    """One grid level: its operator ``A``, its smoothers and the restriction into it."""

    def __init__(
        self,
        channels: int,
        iterations: int,
        fine_channels: int | None = None,
        se_reduction: int | None = None,
    ):
        super().__init__()
        # Held here, once, rather than inside each smoother: a module registered twice would
        # appear twice in the state dict, which safetensors refuses to save.
        self.operator = conv3x3(channels, channels)  # A, shared by every iteration
        self.smoothers = nn.ModuleList(
            MgSmoother(channels, se_reduction) for _ in range(iterations)
        )
        self.project: nn.Module | None = None  # Pi
        self.restrict: nn.Module | None = None  # R
        if fine_channels is not None:
            self.project = conv3x3(fine_channels, channels, stride=2)
            self.restrict = conv3x3(fine_channels, channels, stride=2)

    def coarsen(self, u: Tensor, f: Tensor, fine_operator: nn.Module) -> tuple[Tensor, Tensor]:
        """``(Pi *2 u, R *2 (f - A * u) + A' * (Pi *2 u))`` from the finer level's u, f and A."""
        if self.project is None or self.restrict is None:
            raise RuntimeError("the finest level has no restriction")
        coarse_u = self.project(u)
        coarse_f = self.restrict(f - fine_operator(u)) + self.operator(coarse_u)
        return coarse_u, coarse_f

    def forward(self, u: Tensor, f: Tensor) -> Tensor:
        for smoother in self.smoothers:
            u = smoother(u, f, self.operator)
        return u


class MgNet(FeatureClassifier):
    """MgNet with ``iterations[l]`` smoothing steps on ``widths[l]`` channels at level ``l``."""

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        iterations: Sequence[int] = (2, 2, 2),
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Stats = None,
        std: Stats = None,
        se_reduction: int | None = None,
    ):
        super().__init__(num_classes, in_channels, mean, std)
        _validate(widths, iterations)
        self.se_reduction = se_reduction
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        fine: int | None = None
        for width, count in zip(widths, iterations, strict=True):
            self.stages.append(MgLevel(width, count, fine, se_reduction))
            fine = width
        self.head = ClassifierHead(widths[-1], num_classes)
        self.num_features = list(widths)
        kaiming_init(self)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Normalise, then return the feature ``u`` (N, c_l, H_l, W_l) of every level."""
        f = self.stem(self.normalize(x))
        u = torch.zeros_like(f)
        features: list[Tensor] = []
        for index, level in enumerate(self.stages):
            if index > 0:
                u, f = level.coarsen(u, f, self.stages[index - 1].operator)
            u = level(u, f)
            features.append(u)
        return features


def _validate(widths: Sequence[int], iterations: Sequence[int]) -> None:
    if len(widths) == 0 or len(widths) != len(iterations):
        raise ConfigError(
            f"MgNet needs one width per level: got {len(widths)} widths and "
            f"{len(iterations)} iteration counts"
        )
    if any(int(w) < 1 for w in widths) or any(int(n) < 1 for n in iterations):
        raise ConfigError(f"MgNet widths and iterations must be >= 1, got {widths} / {iterations}")


def _mgnet_factory(se_default: int | None):
    """Factory of the registered MgNet: three levels of 16/32/64 channels, two smoothings each."""

    def factory(
        num_classes: int,
        in_channels: int,
        *,
        mean: Stats = None,
        std: Stats = None,
        se_reduction: int | None = se_default,
        widths: Sequence[int] = (16, 32, 64),
        iterations: Sequence[int] = (2, 2, 2),
    ) -> MgNet:
        return MgNet(
            tuple(int(w) for w in widths),
            tuple(int(n) for n in iterations),
            num_classes=num_classes,
            in_channels=in_channels,
            mean=mean,
            std=std,
            se_reduction=se_reduction,
        )

    factory.__qualname__ = f"{'se_' if se_default else ''}mgnet"
    factory.__doc__ = (
        "MgNet (He and Xu 2019): 16/32/64 channels, 2 smoothing iterations per level, shared A; "
        "about 70% of ResNet-20's parameters."
    )
    return factory


register_model("mgnet")(_mgnet_factory(None))
register_model("se_mgnet")(_mgnet_factory(16))
