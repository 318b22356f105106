"""scikit-learn's bundled 8x8 handwritten digits: the default data set, no download needed."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from robustlab.data.split import stratified_indices

# A fixed split, so every run (and every machine) trains and tests on the same examples.
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are integers 0..16.
    images = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_indices(labels, TEST_FRACTION, SPLIT_SEED)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def load_digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, 8, 8] in [0, 1] and int64 labels of the ``train`` or ``test`` split."""
    train_x, train_y, test_x, test_y = _digits_arrays()
    images, labels = (train_x, train_y) if split == "train" else (test_x, test_y)
    # Copies, so a caller that edits its tensors in place cannot alter the cached arrays.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())
