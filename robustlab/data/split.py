"""Seeded, stratified splits: every class keeps its share on both sides of the cut."""

from __future__ import annotations

import numpy as np
import torch

from robustlab.errors import ConfigError


def stratified_indices(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into (kept, held_out) index arrays, per class.

    Each class sends ``round(fraction * count)`` examples to the held-out side, but always keeps
    at least one on the kept side. Both arrays are sorted, so the original order survives.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"split fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held_out: list[np.ndarray] = []
    # Classes are visited in sorted order so the result depends only on (labels, seed).
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = min(int(round(fraction * len(members))), len(members) - 1)
        held_out.append(rng.permutation(members)[:count])
    held = np.sort(np.concatenate(held_out)) if held_out else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def train_val_split(
    images: torch.Tensor, labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified, deterministic split into ``(train_x, train_y, val_x, val_y)``.

    The same (labels, val_fraction, seed) always gives the same split; train and validation
    never share an example. ``val_fraction=0`` gives an empty validation set.
    """
    if len(images) != len(labels):
        raise ConfigError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
    train_idx, val_idx = stratified_indices(labels.detach().cpu().numpy(), val_fraction, seed)
    train_idx = torch.from_numpy(train_idx).to(labels.device)
    val_idx = torch.from_numpy(val_idx).to(labels.device)
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def stratified_subset(
    images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """About ``size`` examples with every class in its share (all of them if ``size`` is None).

    Taking the first ``size`` examples instead would follow the file's order, which for many
    data sets is grouped by class.
    """
    if size is None or size >= len(labels):
        return images, labels
    _, chosen = stratified_indices(labels.detach().cpu().numpy(), size / len(labels), seed)
    chosen = torch.from_numpy(chosen).to(labels.device)
    return images[chosen], labels[chosen]
