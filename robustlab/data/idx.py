"""MNIST and Fashion-MNIST from their official IDX files (gzipped or not)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from robustlab.errors import DataError

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
NUM_CLASSES = 10
IMAGE_SIZE = 28

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Extra folders under root where the files are often found (ours, then torchvision's layout).
SUBDIRS = {
    "mnist": ("mnist", "MNIST", "MNIST/raw"),
    "fashion_mnist": ("fashion_mnist", "fashion-mnist", "FashionMNIST", "FashionMNIST/raw"),
}
SOURCES = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}


def _how_to_get(name: str, root: Path) -> str:
    return (
        f"run robustlab.data.download_dataset({name!r}, {str(root)!r}) "
        f"or fetch it from {SOURCES[name]}"
    )


def find_idx_file(name: str, root: str | Path, base: str) -> Path:
    """The first of ``base`` / ``base.gz`` under root or its usual subfolders; DataError if none."""
    root = Path(root)
    folders = [root] + [root / sub for sub in SUBDIRS[name]]
    for folder in folders:
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(
        f"{name} file {base}[.gz] not found: expected it at {root / name / base}.gz "
        f"(also looked in {root} and {', '.join(SUBDIRS[name][1:])} under it); "
        f"{_how_to_get(name, root)}"
    )


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {path} ({err}): delete it and download it again") from err


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, checking its magic number and its length."""
    path = Path(path)
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path} is truncated ({len(data)} bytes, no full header): download it again"
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(
            f"{path} is not an IDX file of this kind (magic 0x{found:08x}, "
            f"expected 0x{magic:08x}): "
            "check the file name or download it again"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{path} has {len(data)} bytes but its header {dims} needs {expected}: "
            "the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_split(name: str, root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, 28, 28] in [0, 1] and int64 labels of one MNIST-format split."""
    image_name, label_name = FILES[split]
    image_path = find_idx_file(name, root, image_name)
    label_path = find_idx_file(name, root, label_name)
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{image_path} holds {images.shape[1]}x{images.shape[2]} images, {name} has "
            f"{IMAGE_SIZE}x{IMAGE_SIZE}: is this the right data set?"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels: "
            "the files do not belong together, download them again"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DataError(
            f"{label_path} has label {int(labels.max())} (expected 0..9): download it again"
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
