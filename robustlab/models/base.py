"""Common skeleton of every classifier: normalise -> stem -> stages -> head.

Sharing it keeps ``forward``, ``forward_features`` and ``forward_head`` identical across
models, so ``forward(x) == forward_head(forward_features(x)[-1])`` holds by construction and
the detector can rely on one feature per stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.models.layers.normalize import Normalize


class ClassifierHead(nn.Module):
    """Global average pooling (+ dropout) + linear layer; any spatial size (down to 1x1) works.

    ``dropout`` > 0 puts an ``nn.Dropout`` before the linear layer (active in training mode;
    the Bayesian-uncertainty detector samples it at test time). At 0, the default, the slot
    is an ``nn.Identity``: no parameters, no random draws, the same state dict.
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if isinstance(dropout, bool) or not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be a rate in [0, 1), got {dropout!r}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(float(dropout)) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class FeatureClassifier(nn.Module):
    """Base class; subclasses fill ``stem``, ``stages``, ``head`` and ``num_features``.

    ``final_act`` (identity by default) runs after the last stage, for architectures such as
    pre-activation ResNets whose last block output still needs its BN-ReLU before the head.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.normalize = Normalize(in_channels, mean, std)
        self.stem: nn.Module = nn.Identity()
        self.stages = nn.ModuleList()
        self.final_act: nn.Module = nn.Identity()
        self.head: nn.Module = nn.Identity()
        self.num_features: list[int] = []

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Normalise, then return one feature map (N, C_l, H_l, W_l) per stage."""
        x = self.stem(self.normalize(x))
        features = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index == len(self.stages) - 1:
                x = self.final_act(x)
            features.append(x)
        return features

    def forward_head(self, last_feature: Tensor) -> Tensor:
        """Logits from the last entry of ``forward_features``."""
        return self.head(last_feature)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for [0, 1] images."""
        return self.forward_head(self.forward_features(x)[-1])


def kaiming_init(model: nn.Module) -> None:
    """He initialisation for convolutions; BatchNorm starts as the identity."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
