"""A tiny CIFAR-10 in the official python-batch format, written by the tests (no download).

The official archive unpacks to ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``_5``,
``test_batch`` and ``batches.meta``: pickled dicts whose ``b"data"`` is uint8 [N, 3072] (1024
red, 1024 green, 1024 blue values per image, row-major) and ``b"labels"`` a list of ints.
"""

from __future__ import annotations

from pathlib import Path

import torch

from robustlab.data.cifar10 import write_cifar10_batches


def class_images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images, every class in turn; each class gets its own mean grey level, so that a
    model has something to learn, plus noise."""
    labels = torch.arange(n) % 10
    base = (labels.float() * 25.0 + 10.0).view(-1, 1, 1, 1)
    noise = torch.randn(n, 3, 32, 32, generator=generator) * 30.0
    return (base + noise).clamp(0, 255).to(torch.uint8), labels


def write_tiny_cifar10(
    root: str | Path, per_batch: int = 40, test: int = 40, seed: int = 0
) -> Path:
    """Write ``root/cifar-10-batches-py`` with five training batches of ``per_batch`` images, a
    test batch of ``test`` and ``batches.meta``; returns ``root``."""
    generator = torch.Generator().manual_seed(seed)
    train = class_images(5 * per_batch, generator)
    write_cifar10_batches(root, train, class_images(test, generator))
    return Path(root)
