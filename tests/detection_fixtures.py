"""Shared, cached fixtures of the detection tests: a tiny CNN trained on scikit-learn digits
and a trivial "model" that hands its input over as features."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from torch import nn


class TinyCNN(nn.Module):
    """Three conv stages on 1x8x8 digits; ``forward_features`` returns one map per stage.

    ``dropout`` > 0 adds dropout before the linear layer (for Bayesian uncertainty).
    """

    def __init__(self, num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
                nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU()),
            ]
        )
        self.fc = nn.Linear(32, num_classes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward_head(self, last: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(last.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[-1])


class FeaturesAsInput(nn.Module):
    """A "model" whose single stage is the input itself, as (N, D, 1, 1) maps."""

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x.reshape(len(x), -1, 1, 1)]


@dataclass(frozen=True)
class DigitsSetup:
    model: TinyCNN
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


@functools.lru_cache(maxsize=2)
def digits_setup(dropout: float = 0.0) -> DigitsSetup:
    """Digits split 1000/400/397 and a TinyCNN trained for a few seconds (about 97% test),
    with head dropout at rate ``dropout`` (0: none)."""
    torch.manual_seed(0)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div(16.0).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    images, labels = images[order], labels[order]
    model = TinyCNN(dropout=dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_x, train_y = images[:1000], labels[:1000]
    model.train()
    for _ in range(25):
        for idx in torch.randperm(1000).split(50):
            loss = nn.functional.cross_entropy(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    return DigitsSetup(
        model,
        (train_x, train_y),
        (images[1000:1400], labels[1000:1400]),
        (images[1400:], labels[1400:]),
    )


def gaussian_clusters(
    num_classes: int = 3, dim: int = 4, per_class: int = 60, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class clusters with a shared, correlated covariance; features lie in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=gen, dtype=torch.float64) * 0.04
    centres = 0.25 + 0.5 * torch.rand(num_classes, dim, generator=gen, dtype=torch.float64)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    noise = torch.randn(len(labels), dim, generator=gen, dtype=torch.float64) @ mixing
    return (centres[labels] + noise).clamp(0.01, 0.99).float(), labels
