"""Explicit, opt-in download of the official data set files, verified by MD5.

Nothing in robustlab downloads on its own: ``load_dataset`` only reads files, and this module
runs only when called. Each file is written to a temporary file beside its target and renamed
into place only after its checksum matched, so an interrupted download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from robustlab.data.cifar10 import FOLDER as CIFAR_FOLDER
from robustlab.data.datasets import canonical_name
from robustlab.errors import ConfigError, DataError
from robustlab.fileio import atomic_path
from robustlab.progress import progress

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
# file name -> MD5 of the official file (the same checksums torchvision verifies).
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
_CIFAR_MD5 = {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
_CIFAR_MEMBERS = (
    "batches.meta",
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "readme.html",
)

# name -> (sub-folder of root, mirrors, {file: md5})
SOURCES = {
    "mnist": ("mnist", _MNIST_MIRRORS, _MNIST_MD5),
    "fashion_mnist": ("fashion_mnist", _FASHION_MIRRORS, _FASHION_MD5),
    "cifar10": ("", _CIFAR_MIRRORS, _CIFAR_MD5),
}


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str, timeout: float) -> None:
    """Stream ``url`` into a temp file beside ``target``; keep it only if its MD5 matches."""
    with atomic_path(target) as tmp:
        digest = hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            chunks = iter(lambda: response.read(_CHUNK), b"")
            for chunk in progress(chunks, desc=target.name):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(
                f"{url} has MD5 {digest.hexdigest()}, expected {md5}: the download is corrupt "
                "or the mirror changed; try again later"
            )


def _fetch_verified(
    name: str, mirrors: tuple[str, ...], target: Path, md5: str, timeout: float
) -> None:
    if target.is_file() and file_md5(target) == md5:
        log.info("%s is already present and verified", target)
        return
    errors = []
    for mirror in mirrors:
        url = mirror + target.name
        log.info("downloading %s", url)
        try:
            _fetch(url, target, md5, timeout)
            return
        except (urllib.error.URLError, OSError, DataError) as err:
            errors.append(f"{url}: {err}")
            log.warning("download of %s failed: %s", url, err)
    raise DataError(f"could not download {name} file {target.name} ({'; '.join(errors)})")


def _extract_cifar(archive: Path, root: Path) -> None:
    """Unpack only the known batch files, by name, so a crafted archive cannot write elsewhere."""
    folder = root / CIFAR_FOLDER
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parent, _, base = member.name.rpartition("/")
            if parent != CIFAR_FOLDER or base not in _CIFAR_MEMBERS or not member.isfile():
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            with atomic_path(folder / base) as tmp, open(tmp, "wb") as out:
                for chunk in iter(lambda src=source: src.read(_CHUNK), b""):
                    out.write(chunk)


def download_dataset(name: str, root: str | Path, timeout: float = 60.0) -> Path:
    """Download (once) and verify the official files of ``name`` under ``root``.

    MNIST and Fashion-MNIST land in ``root/<name>/``; CIFAR-10 is unpacked into
    ``root/cifar-10-batches-py/``. Files already present with the right MD5 are kept.
    Returns the folder holding the files; ``load_dataset(name, root)`` then finds them.
    """
    key = canonical_name(name)
    if key not in SOURCES:
        raise ConfigError(
            f"{key} needs no download; downloadable data sets: {', '.join(sorted(SOURCES))}"
        )
    subfolder, mirrors, checksums = SOURCES[key]
    folder = Path(root) / subfolder if subfolder else Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    for filename, md5 in checksums.items():
        _fetch_verified(key, mirrors, folder / filename, md5, timeout)
    if key == "cifar10":
        _extract_cifar(folder / "cifar-10-python.tar.gz", folder)
        return folder / CIFAR_FOLDER
    return folder
