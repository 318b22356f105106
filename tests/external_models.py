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
