"""Gaussian kernel density in feature space, summed in chunks (Feinman et al. 2017).

``log_kernel_density`` is the log of the normalised Gaussian kernel density estimate
``1/M * sum_j N(q; p_j, h^2 I)`` (scikit-learn's ``KernelDensity(kernel="gaussian")``
convention), for several bandwidths at once. The sum runs over ``chunk_size`` points at a
time with a running log-sum-exp, so memory stays at ``queries x chunk_size`` whatever the
size of the training set, and small bandwidths cannot underflow to ``log 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from robustlab.errors import ConfigError, DataError


def squared_distances(queries: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(B, M)``; differentiable (0 gradient at distance 0)."""
    return torch.cdist(queries, points).square()


def log_kernel_density(
    queries: torch.Tensor,
    points: torch.Tensor,
    bandwidths: Sequence[float],
    chunk_size: int = 4096,
) -> torch.Tensor:
    """Log Gaussian kernel density ``(B, len(bandwidths))`` of ``queries (B, D)`` under
    ``points (M, D)``; differentiable in ``queries``."""
    if len(points) == 0:
        raise DataError("kernel density needs at least one point")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    h2 = torch.tensor(
        [2.0 * float(h) ** 2 for h in bandwidths], dtype=queries.dtype, device=queries.device
    )
    running = None
    for start in range(0, len(points), chunk_size):
        sq = squared_distances(queries, points[start : start + chunk_size])
        part = torch.logsumexp(-sq[:, :, None] / h2, dim=1)
        running = part if running is None else torch.logaddexp(running, part)
    dim = queries.shape[1]
    log_norm = math.log(len(points)) + 0.5 * dim * torch.log(math.pi * h2)
    return running - log_norm


def within_class_scale(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Root-mean-square distance of the features to their class mean: the unit of the
    bandwidth grid, so that one grid fits models whose features differ in scale."""
    features = features.double()
    centered = features.clone()
    for c in labels.unique():
        mask = labels == c
        centered[mask] -= features[mask].mean(0)
    scale = float(centered.pow(2).sum(1).mean().sqrt())
    if not scale > 0.0:
        raise DataError(
            "features have zero variance within classes: the kernel density needs spread "
            "(check the model: dead last layer?)"
        )
    return scale
