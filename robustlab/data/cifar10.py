"""CIFAR-10 from the official python pickle batches, read with a restricted unpickler (the
batches are pickles: only numpy's array rebuilders may load), and written in the same format."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustlab.errors import DataError
from robustlab.fileio import atomic_path

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
NUM_CLASSES = 10
PIXELS = 3 * 32 * 32

# The only globals a batch file needs to rebuild its numpy arrays. numpy 2 renamed
# numpy.core to numpy._core, and files written by either version must load.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


def _numpy_global(module: str, name: str) -> Any:
    if module == "numpy":
        return getattr(np, name)
    # Resolve through whichever of numpy._core / numpy.core this numpy has, without the
    # deprecation shim.
    submodule = module.split(".", 2)[-1]
    for prefix in ("numpy._core.", "numpy.core."):
        try:
            return getattr(importlib.import_module(prefix + submodule), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"{module}.{name} is not available in this numpy")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataError(
                f"refusing to unpickle {module}.{name}: a CIFAR-10 batch only holds numpy arrays "
                "and lists, so this file is not a genuine batch; delete it and download it again"
            )
        return _numpy_global(module, name)


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images [N, 3, 32, 32], int64 labels [N]), validated."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            # The official batches were pickled by Python 2; their str keys become bytes.
            batch = _BatchUnpickler(handle, encoding="bytes").load()
    except DataError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise DataError(f"cannot read CIFAR-10 batch {path} ({err}): download it again") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path} is not a CIFAR-10 batch (no b'data'/b'labels'): download it again")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataError(
            f"{path} holds data {data.dtype}{list(data.shape)}, expected uint8[N, {PIXELS}]: "
            "download it again"
        )
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise DataError(
            f"{path} has {labels.size} labels for {len(data)} images or labels outside 0..9"
        )
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major: already CHW.
    return data.reshape(-1, 3, 32, 32), labels


def find_batch_folder(root: str | Path) -> Path:
    """The folder holding the batches: root/cifar-10-batches-py, root/cifar10/..., or root."""
    root = Path(root)
    for folder in (root / FOLDER, root / "cifar10" / FOLDER, root):
        if (folder / TEST_BATCHES[0]).is_file() or (folder / TRAIN_BATCHES[0]).is_file():
            return folder
    return root / FOLDER


def load_cifar10_split(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 3, 32, 32] in [0, 1] and int64 labels of the train or test split."""
    folder = find_batch_folder(root)
    parts_x, parts_y = [], []
    for name in TRAIN_BATCHES if split == "train" else TEST_BATCHES:
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"CIFAR-10 batch file not found: expected {path}; run "
                f"robustlab.data.download_dataset('cifar10', {str(root)!r}) or fetch {SOURCE} "
                f"and unpack it into {root}"
            )
        images, labels = read_batch(path)
        parts_x.append(images)
        parts_y.append(labels)
    images = torch.from_numpy(np.concatenate(parts_x).astype(np.float32) / 255.0)
    return images, torch.from_numpy(np.concatenate(parts_y))


LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _write_batch(path: Path, images: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    """One batch file as the official archive holds it: uint8 rows of 1024 R, G, B values."""
    if images.is_floating_point():
        images = (images.clamp(0, 1) * 255).round()
    data = images.to(torch.uint8).reshape(len(images), PIXELS).numpy()
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": data,
        b"filenames": [f"{name}_{i}.png".encode() for i in range(len(data))],
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(batch, handle, protocol=4)


def write_cifar10_batches(
    root: str | Path,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
) -> Path:
    """Write images [N, 3, 32, 32] (float in [0, 1] or uint8) and labels as the official python
    batches under ``root/cifar-10-batches-py`` (the training set cut into five batches, plus
    ``test_batch`` and ``batches.meta``), each file written atomically; returns the folder.

    Synthetic or converted data then runs through the same reader as the real archive (the
    tests' tiny CIFAR-10 and ``scripts/gpu_check.py`` use it)."""
    folder = Path(root) / FOLDER
    for images, labels in (train, test):
        if images.shape[1:] != (3, 32, 32) or len(images) != len(labels):
            raise DataError(
                f"CIFAR-10 batches hold [N, 3, 32, 32] images with one label each, got "
                f"{tuple(images.shape)} and {len(labels)} labels"
            )
    parts = torch.arange(len(train[0])).tensor_split(len(TRAIN_BATCHES))
    for name, rows in zip(TRAIN_BATCHES, parts, strict=True):
        _write_batch(folder / name, train[0][rows], train[1][rows], name)
    _write_batch(folder / TEST_BATCHES[0], *test, TEST_BATCHES[0])
    meta = {
        b"label_names": [name.encode() for name in LABEL_NAMES],
        b"num_cases_per_batch": len(parts[0]),
        b"num_vis": PIXELS,
    }
    with atomic_path(folder / "batches.meta") as tmp, open(tmp, "wb") as handle:
        pickle.dump(meta, handle, protocol=4)
    return folder
