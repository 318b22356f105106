"""Models robustlab did not define, as a user's own package would provide them: the command line
imports them by name (``model.factory=tests.external_models:mlp``, with the repository on
PYTHONPATH)."""

from __future__ import annotations

import torch
from torch import nn


def mlp(width: int = 16, num_classes: int = 10, in_features: int = 64) -> nn.Sequential:
    """A plain two-layer perceptron on flattened 8x8 digits (no normalisation inside)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, num_classes)
    )


def fitted_mlp(
    images: torch.Tensor, labels: torch.Tensor, width: int = 8, steps: int = 80
) -> nn.Sequential:
    """``mlp(width)`` trained full-batch with Adam on standardised images (seeded)."""
    torch.manual_seed(0)
    model = mlp(width)
    standardised = (images - images.mean()) / images.std()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(standardised), labels).backward()
        optimizer.step()
    return model.eval()


NOT_A_MODEL = 3


class LogitNoise(nn.Module):
    """Gaussian noise on the logits at every call, in train and eval mode alike (a randomized
    defense of the kind published evaluations meet); no parameters."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.sigma * torch.randn_like(logits)


class NoisyFlatten(nn.Flatten):
    """Flatten with Gaussian noise on the input pixels first (input-noise defenses)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images + self.sigma * torch.randn_like(images))


def noisy_logit_mlp(width: int = 8, sigma: float = 1.0) -> nn.Sequential:
    """``mlp(width)`` with noise on its logits (the same state-dict keys as ``mlp``)."""
    return nn.Sequential(*mlp(width), LogitNoise(sigma))


def noisy_input_mlp(width: int = 8, sigma: float = 0.25) -> nn.Sequential:
    """``mlp(width)`` with noise on its inputs (the same state-dict keys as ``mlp``)."""
    net = mlp(width)
    net[0] = NoisyFlatten(sigma)
    return net
