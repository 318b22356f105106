"""A CIFAR-shaped stand-in for torchattacks' own test set-up (robustbench's CIFAR-10 model
and images, which need downloads): 3x32x32 images of ten synthetic classes (a smooth colour
pattern per class under pixel noise) and a small BatchNorm CNN trained on them for a second."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES = 10


def cifar_shaped(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (N, 3, 32, 32) in [0, 1] and their labels; the class patterns are fixed,
    ``seed`` draws the labels and the noise."""
    patterns = torch.rand(N_CLASSES, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    patterns = F.interpolate(patterns, size=32, mode="bilinear", align_corners=False)
    generator = torch.Generator().manual_seed(seed + 1)
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    noise = torch.rand(n, 3, 32, 32, generator=generator)
    return (0.35 * patterns[labels] + 0.65 * noise).clamp(0, 1), labels


def cifar_shaped_model() -> nn.Module:
    """The trained stand-in, in eval mode and without parameter gradients (torchattacks' own
    CW, run as the reference, leaves gradients on the shared model)."""
    net = _trained().eval()
    for param in net.parameters():
        param.grad = None
    return net


@lru_cache(maxsize=1)
@torch.enable_grad()  # the torchattacks test shape runs under no_grad
def _trained() -> nn.Module:
    """conv-BN-ReLU-conv-ReLU-pool-linear, trained once per process (five epochs of Adam on
    600 images, one thread); it classifies the held-out images of `cifar_shaped` all right."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, N_CLASSES),
    )
    images, labels = cifar_shaped(600, seed=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(5):
            for index in torch.randperm(len(images)).split(64):
                optimizer.zero_grad()
                F.cross_entropy(net(images[index]), labels[index]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    optimizer.zero_grad(set_to_none=True)
    return net.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy, in eval mode and without gradients (torchattacks' clean_accuracy)."""
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()
