"""A tiny BatchNorm CNN trained for a few seconds on scikit-learn digits, shared by attack tests."""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn


class TinyCNN(nn.Module):
    """conv-BN-ReLU x2 + global pooling + linear: 8x8 grey images in [0, 1] -> 10 logits."""

    def __init__(self, activation: nn.Module | None = None):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            activation if activation is not None else nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@lru_cache(maxsize=1)
def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_x, train_y, test_x, test_y): digits / 16 as (N, 1, 8, 8), fixed split."""
    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def fit_briefly(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int):
    """``model`` trained in place with Adam (lr 0.01, batches of 64, one thread), in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threading overhead dominates, worse on a busy machine
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(images)).split(64):
                optimizer.zero_grad()
                F.cross_entropy(model(images[idx]), labels[idx]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


@lru_cache(maxsize=1)
def trained_tiny_cnn() -> TinyCNN:
    """Trained once per process (about a second; ~96% test accuracy)."""
    torch.manual_seed(0)
    train_x, train_y, _, _ = digits_split()
    return fit_briefly(TinyCNN(), train_x, train_y, epochs=15)


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """200 held-out digits (images, labels)."""
    _, _, test_x, test_y = digits_split()
    return test_x[:200], test_y[:200]


@pytest.fixture()
def model() -> TinyCNN:
    """The shared trained model, handed out in eval mode with no parameter gradients."""
    net = trained_tiny_cnn()
    yield net.eval()
    net.eval()
    for param in net.parameters():
        param.grad = None
        param.requires_grad_(True)
