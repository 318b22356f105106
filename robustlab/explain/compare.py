"""How much an explanation changes: top-k intersection and Spearman rank correlation between
two maps of the same example (Ghorbani, Abid and Zou 2019, "Interpretation of Neural Networks
is Fragile"). Maps are compared as given: pass importances (see ``importance``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

from robustlab.errors import ConfigError


def _flat_pair(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    if first.shape != second.shape or first.ndim < 2:
        raise ConfigError(
            f"maps must have the same (N, ...) shape, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
    return first.detach().flatten(1).float().cpu(), second.detach().flatten(1).float().cpu()


def default_k(num_pixels: int) -> int:
    """An eighth of the pixels (8 of an 8x8 digit), at least one."""
    return max(1, num_pixels // 8)


def topk_intersection(first: Tensor, second: Tensor, k: int) -> Tensor:
    """Per example, the fraction of the ``k`` largest pixels of ``first`` that are also among
    the ``k`` largest of ``second`` (chance level: k / number of pixels). Ties are broken by
    pixel index, so a constant map has an arbitrary top-k."""
    first, second = _flat_pair(first, second)
    if not 1 <= k <= first.shape[1]:
        raise ConfigError(f"k must lie in [1, {first.shape[1]}] (pixels per map), got {k}")
    top_first = torch.zeros_like(first, dtype=torch.bool)
    top_second = torch.zeros_like(second, dtype=torch.bool)
    top_first.scatter_(1, first.topk(k, dim=1).indices, True)
    top_second.scatter_(1, second.topk(k, dim=1).indices, True)
    return (top_first & top_second).sum(1).float() / k


def spearman(first: Tensor, second: Tensor) -> Tensor:
    """Per example Spearman rank correlation (ties get their average rank); NaN where a map is
    constant, since a correlation with a constant is undefined."""
    first, second = _flat_pair(first, second)
    ranks_first = rankdata(first.numpy(), axis=1)
    ranks_second = rankdata(second.numpy(), axis=1)
    centered_first = ranks_first - ranks_first.mean(axis=1, keepdims=True)
    centered_second = ranks_second - ranks_second.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centered_first, axis=1) * np.linalg.norm(centered_second, axis=1)
    products = (centered_first * centered_second).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(norms > 0, products / np.where(norms > 0, norms, 1.0), np.nan)
    return torch.from_numpy(values).float()
