"""robustlab.data: file formats read back exactly, safe unpickling, splits and the loader."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import robustlab.data as rdata
from robustlab.data import Augmentation, TensorLoader, load_dataset, train_val_split
from robustlab.data import download as download_module
from robustlab.data.cifar10 import read_batch
from robustlab.data.idx import IMAGE_MAGIC, LABEL_MAGIC
from robustlab.errors import ConfigError, DataError


def _data_error(name: str, root, split: str = "train", match: str | None = None) -> str:
    """The DataError message of loading ``name``; it must be a single line."""
    with pytest.raises(DataError, match=match) as err:
        load_dataset(name, root=root, split=split)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_digits_split_is_fixed_and_partitions_the_data():
    train_x, train_y = load_dataset("digits", split="train")
    test_x, test_y = load_dataset("digits", split="test")
    for images, labels in ((train_x, train_y), (test_x, test_y)):
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape[1:] == (1, 8, 8) and len(images) == len(labels)
        assert images.min() == 0.0 and images.max() == 1.0
    again_x, again_y = load_dataset("Digits", split="train")
    assert torch.equal(train_x, again_x) and torch.equal(train_y, again_y)

    def rows(x, y):
        return Counter(tuple(r) for r in np.c_[np.reshape(x, (len(x), -1)), y].tolist())

    full = load_digits()
    # Train and test together are exactly the bundled data set, each example once.
    assert rows(train_x * 16, train_y) + rows(test_x * 16, test_y) == rows(full.data, full.target)
    counts_train, counts_test = torch.bincount(train_y), torch.bincount(test_y)
    share = counts_test.double() / (counts_train + counts_test).double()
    assert torch.all((share - 0.2).abs() < 0.02)


def test_digits_statistics_match_dataset_info():
    images, _ = load_dataset("digits", split="train")
    info = rdata.dataset_info("digits")
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, 8)
    assert images.double().mean().item() == pytest.approx(info.mean[0], abs=1e-4)
    assert images.double().std(unbiased=False).item() == pytest.approx(info.std[0], abs=1e-4)


def test_registry_names_and_errors():
    assert rdata.list_datasets() == ["cifar10", "digits", "fashion_mnist", "mnist", "mnist5k"]
    infos = [rdata.dataset_info(name) for name in rdata.list_datasets()]
    assert all(len(i.mean) == len(i.std) == i.in_channels for i in infos)
    assert rdata.dataset_info("Fashion-MNIST").name == "fashion_mnist"
    with pytest.raises(ConfigError, match="cifar10, digits, fashion_mnist, mnist, mnist5k"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="train, test"):
        load_dataset("digits", split="validation")
    assert "download_dataset('mnist'" in _data_error("mnist", None, match="root is required")


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_set(folder: Path, gz: bool, n_train: int = 5, n_test: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, array, magic in (
            ("images-idx3", images, IMAGE_MAGIC),
            ("labels-idx1", labels, LABEL_MAGIC),
        ):
            data = _idx_bytes(array, magic)
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
        arrays["train" if prefix == "train" else "test"] = (images, labels)
    return arrays


@pytest.mark.parametrize(
    ("name", "layout", "gz"),
    [
        ("mnist", "", True),
        ("mnist", "mnist", False),
        ("mnist", "MNIST/raw", True),
        ("fashion_mnist", "FashionMNIST/raw", False),
        ("fashion_mnist", "fashion_mnist", True),
    ],
)
def test_idx_files_read_back_exactly(tmp_path, name, layout, gz):
    arrays = _write_idx_set(tmp_path / layout, gz=gz)
    for split, (images, labels) in arrays.items():
        x, y = load_dataset(name, root=tmp_path, split=split)
        assert x.dtype == torch.float32 and x.shape == (len(images), 1, 28, 28)
        assert torch.equal((x * 255).round().to(torch.uint8)[:, 0], torch.from_numpy(images))
        assert y.dtype == torch.int64 and y.tolist() == labels.tolist()


def test_idx_corrupt_header_truncation_and_mismatch(tmp_path):
    _write_idx_set(tmp_path, gz=False)
    images = tmp_path / "train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(b"\x00\x00\x08\x01" + good[4:])
    assert str(images) in _data_error("mnist", tmp_path, match="magic")
    images.write_bytes(good[:-10])
    assert str(images) in _data_error("mnist", tmp_path, match="truncated")
    images.write_bytes(good[:6])
    _data_error("mnist", tmp_path, match="truncated")
    images.write_bytes(good)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx_bytes(np.zeros(4, dtype=np.uint8), LABEL_MAGIC))
    _data_error("mnist", tmp_path, match="4 labels")
    images.unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    _data_error("mnist", tmp_path, match="cannot read")


def test_idx_missing_file_names_the_path(tmp_path):
    message = _data_error("fashion_mnist", tmp_path, split="test")
    assert str(tmp_path / "fashion_mnist" / "t10k-images-idx3-ubyte") in message
    assert "download_dataset('fashion_mnist'" in message


def _write_batch(path: Path, data: np.ndarray, labels: list[int], protocol: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol))


def test_cifar10_batches_read_back_exactly_in_chw_order(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    data = {n: rng.integers(0, 256, (2 + i % 2, 3072), dtype=np.uint8) for i, n in enumerate(names)}
    labels = {n: rng.integers(0, 10, len(d)).tolist() for n, d in data.items()}
    for i, n in enumerate(names):
        _write_batch(tmp_path / "cifar-10-batches-py" / n, data[n], labels[n], protocol=4 + i % 2)
    for split, batch_names in (("train", names[:5]), ("test", names[5:])):
        x, y = load_dataset("cifar10", root=tmp_path, split=split)
        expected = np.concatenate([data[n] for n in batch_names])
        raw = (x * 255).round().to(torch.uint8).numpy()
        assert x.dtype == torch.float32 and raw.shape == (len(expected), 3, 32, 32)
        # Channel c, row r, column w is byte c * 1024 + r * 32 + w of an image's row.
        assert raw[1, 2, 5, 7] == expected[1, 2048 + 5 * 32 + 7]
        assert np.array_equal(raw.reshape(len(expected), -1), expected)
        assert y.tolist() == sum((labels[n] for n in batch_names), [])


class _Py2Pickler(pickle._Pickler):
    """Writes like the Python 2 pickler of the official batches: str as bytes, numpy.core."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())

    dispatch.update({str: save_str, bytes: save_str, type: save_global})


def test_cifar10_reads_python2_batches_with_the_legacy_numpy_module_path(tmp_path):
    data = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
    with open(tmp_path / "batch", "wb") as handle:
        _Py2Pickler(handle, protocol=2).dump({b"data": data, b"labels": [3, 4]})
    assert b"cnumpy.core.multiarray\n_reconstruct" in (tmp_path / "batch").read_bytes()
    images, labels = read_batch(tmp_path / "batch")
    assert np.array_equal(images.reshape(2, -1), data) and labels.tolist() == [3, 4]


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "was_executed"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}))
    assert "system" in _data_error("cifar10", tmp_path, "test", match="refusing to unpickle")
    assert not marker.exists()


def test_cifar10_missing_and_malformed_batches(tmp_path):
    expected = str(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert expected in _data_error("cifar10", tmp_path)
    _write_batch(tmp_path / "test_batch", np.zeros((2, 100), dtype=np.uint8), [0, 1])
    _data_error("cifar10", tmp_path, "test", match=r"expected uint8\[N, 3072\]")
    _write_batch(tmp_path / "test_batch", np.zeros((2, 3072), dtype=np.uint8), [0])
    _data_error("cifar10", tmp_path, "test", match="1 labels for 2 images")


def test_train_val_split_is_stratified_disjoint_and_deterministic():
    labels = torch.arange(10).repeat_interleave(torch.arange(10, 20))
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1)
    tx, ty, vx, vy = train_val_split(images, labels, 0.25, seed=3)
    ids_train, ids_val = set(tx.flatten().tolist()), set(vx.flatten().tolist())
    assert not ids_train & ids_val and len(ids_train | ids_val) == len(labels)
    assert torch.equal(labels[tx.flatten().long()], ty)
    assert torch.equal(labels[vx.flatten().long()], vy)
    expected = (0.25 * torch.arange(10, 20).double()).round().long()
    assert torch.equal(torch.bincount(vy, minlength=10), expected)
    again = train_val_split(images, labels, 0.25, seed=3)
    assert torch.equal(again[2], vx)
    assert not torch.equal(train_val_split(images, labels, 0.25, seed=4)[2], vx)
    assert len(train_val_split(images, labels, 0.0, seed=0)[2]) == 0
    with pytest.raises(ConfigError):
        train_val_split(images, labels, 1.0, seed=0)


def _ids(n: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n)


def _epoch(loader: TensorLoader) -> list[list[int]]:
    return [y.tolist() for _, y in loader]


def test_loader_covers_each_example_once_per_epoch():
    images, labels = _ids()
    loader = TensorLoader(images, labels, batch_size=5, seed=1)
    assert len(loader) == 5 and loader.num_examples == 23
    for _ in range(3):
        batches = [(x, y) for x, y in loader]
        assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
        order = torch.cat([y for _, y in batches])
        assert sorted(order.tolist()) == list(range(23))
        assert all(torch.equal(x.flatten().long(), y) for x, y in batches)
    plain = TensorLoader(images, labels, batch_size=5, shuffle=False)
    assert sum(_epoch(plain), []) == list(range(23))


def test_loader_order_is_a_function_of_seed_and_epoch():
    images, labels = _ids()
    first, second = TensorLoader(images, labels, 4, seed=7), TensorLoader(images, labels, 4, seed=7)
    epochs = [_epoch(first) for _ in range(3)]
    assert [_epoch(second) for _ in range(3)] == epochs
    assert epochs[0] != epochs[1] != epochs[2]
    assert _epoch(TensorLoader(images, labels, 4, seed=8)) != epochs[0]
    resumed = TensorLoader(images, labels, 4, seed=7)
    resumed.set_epoch(2)
    assert _epoch(resumed) == epochs[2] and resumed.epoch == 2
    first.set_epoch(1)
    assert _epoch(first) == epochs[1] and _epoch(first) == epochs[2]


def test_loader_drop_last_and_bad_arguments():
    images, labels = _ids()
    loader = TensorLoader(images, labels, batch_size=5, drop_last=True)
    assert len(loader) == 4 and [len(y) for _, y in loader] == [5, 5, 5, 5]
    with pytest.raises(ConfigError):
        TensorLoader(images, labels[:-1], batch_size=5)
    with pytest.raises(ConfigError):
        TensorLoader(images, labels, batch_size=0)
    with pytest.raises(ConfigError):
        Augmentation(crop_padding=-1)


def _batches_of(augment: Augmentation, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    loader = TensorLoader(
        images, torch.arange(len(images)), 16, shuffle=False, seed=seed, augment=augment
    )
    return torch.cat([x for x, _ in loader])


def test_augmentation_identity_and_flip():
    images = torch.rand(40, 3, 6, 6)
    assert torch.equal(_batches_of(Augmentation(), images), images)
    flipped = _batches_of(Augmentation(horizontal_flip=True), images)
    same = (flipped == images).flatten(1).all(1)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored) and same.any() and mirrored.any()
    assert torch.equal(_batches_of(Augmentation(horizontal_flip=True), images), flipped)


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    images = torch.rand(32, 2, 5, 7) * 0.9 + 0.1  # never zero, so padding is recognisable
    augment = Augmentation(crop_padding=2, horizontal_flip=True)
    cropped = _batches_of(augment, images, seed=5)
    assert cropped.shape == images.shape and cropped.min() >= 0 and cropped.max() <= 1
    # windows[i, c, dy, dx] is the 5x7 window of padded image i at offset (dy, dx).
    windows = torch.nn.functional.pad(images, (2,) * 4).unfold(2, 5, 1).unfold(3, 7, 1)
    target = cropped[:, :, None, None]
    match = ((windows == target) | (windows.flip(-1) == target)).all(-1).all(-1).all(1)
    assert match.flatten(1).any(1).all()
    assert len(set(match.flatten(1).float().argmax(1).tolist())) > 3
    assert torch.equal(_batches_of(augment, images, seed=5), cropped)


def test_download_verifies_checksums_and_writes_atomically(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    _write_idx_set(mirror, gz=True)
    # Reverse-sorted: train-* first, so the corrupted t10k-images file is fetched last.
    files = sorted(mirror.iterdir(), reverse=True)
    checksums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in files}
    source = ("mnist", (mirror.as_uri() + "/",), checksums)
    monkeypatch.setitem(download_module.SOURCES, "mnist", source)
    folder = rdata.download_dataset("mnist", tmp_path / "data")
    assert folder == tmp_path / "data" / "mnist" and len(list(folder.iterdir())) == 4
    assert len(load_dataset("mnist", root=tmp_path / "data")[0]) == 5
    bad = dict(checksums, **{"t10k-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(download_module.SOURCES, "mnist", ("mnist", source[1], bad))
    with pytest.raises(DataError, match="MD5"):
        rdata.download_dataset("mnist", tmp_path / "other")
    left = {p.name for p in (tmp_path / "other" / "mnist").iterdir()}  # no temp files either
    assert left == set(checksums) - {"t10k-images-idx3-ubyte.gz"}


def test_cifar_archive_extraction_ignores_unexpected_members(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("cifar-10-batches-py/test_batch", "../escape", "cifar-10-batches-py/x.sh"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    download_module._extract_cifar(archive, tmp_path / "root")
    assert [p.name for p in (tmp_path / "root").rglob("*")] == ["cifar-10-batches-py", "test_batch"]
    assert not (tmp_path / "escape").exists()
