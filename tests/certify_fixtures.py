"""Small models shared by the certification tests: a linear classifier with a known decision
boundary and a tiny small_cnn trained for a few seconds on digits."""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
from torch import nn

from robustlab.data import load_dataset
from robustlab.models import create_model
from tests.attack_fixtures import fit_briefly


def linear_classifier(weight: torch.Tensor, bias: torch.Tensor) -> nn.Sequential:
    """logits = W flatten(x) + b: the distance to each pairwise boundary is known exactly."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return nn.Sequential(nn.Flatten(), layer)


def linear_distance(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, dual: float):
    """Exact distance (in the norm whose dual is ``dual``) from each x to the nearest boundary of
    its predicted class, without the [0, 1] box: min_j (z_c - z_j) / ||w_c - w_j||_dual."""
    logits = x.flatten(1) @ weight.T + bias
    c = logits.argmax(1)
    gaps = logits.gather(1, c[:, None]) - logits
    diffs = (weight[c][:, None, :] - weight[None, :, :]).norm(p=dual, dim=2)
    dist = gaps / diffs.clamp(min=1e-12)
    dist[torch.arange(len(x)), c] = float("inf")
    return dist.amin(1)


@lru_cache(maxsize=1)
def trained_small_cnn() -> nn.Module:
    """small_cnn (widths 8, 16) trained 4 epochs with Adam on digits (about 2 s, ~95% test)."""
    torch.manual_seed(0)
    images, labels = load_dataset("digits", split="train")
    model = create_model("small_cnn", num_classes=10, in_channels=1, widths=(8, 16))
    return fit_briefly(model, images, labels, epochs=4)


def digits_test(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test digits."""
    images, labels = load_dataset("digits", split="test")
    return images[:n], labels[:n]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models and batches: one torch thread is faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
