"""Atomic file writes: a reader (or a crash) never sees a half-written checkpoint or result.

Files are written to a temporary name beside their target and renamed over it; a directory
(a checkpoint) is built beside its target and swapped in whole (`replace_directory`).
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by the tensor writer alone: figures and JSON need none
    import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield tmp
        # mkstemp makes owner-only files; give the result the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def json_safe(obj: Any) -> Any:
    """Turn non-finite floats into None (JSON has no NaN) and tuples into lists, recursively.

    NumPy scalars and one-element tensors become Python numbers first.
    """
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Serialise first, then write via temp file + fsync + rename; the old file survives errors."""
    text = json.dumps(json_safe(obj), indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def write_tensors_atomic(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write a safetensors file atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata
        )


# Linux renameat2(2) RENAME_EXCHANGE and macOS renamex_np(3) RENAME_SWAP: both flags are 2
_SWAP_FLAG = 2
_AT_FDCWD = -100  # Linux: paths relative to the working directory
_NO_SWAP = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step where the OS and file system can; False
    (nothing done) where they cannot."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform != "win32" else None
    a, b = os.fsencode(first), os.fsencode(second)
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        swap = libc.renameat2
        swap.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        swap.argtypes += [ctypes.c_uint]
        status = swap(_AT_FDCWD, a, _AT_FDCWD, b, _SWAP_FLAG)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        swap = libc.renamex_np
        swap.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        status = swap(a, b, _SWAP_FLAG)
    else:
        return False
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_SWAP:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def replaced_aside(target: str | Path) -> Path:
    """Where `replace_directory` parks the old directory when it cannot swap atomically."""
    target = Path(target)
    return target.with_name(target.name + ".replaced")


def replace_directory(source: str | Path, target: str | Path) -> None:
    """Make the complete directory ``source`` the directory ``target``, removing the old one.

    ``target`` is at every moment either the old directory or the new one, never missing or
    half-written: a new name is one rename; an existing directory is swapped with ``source``
    in one atomic step (Linux ``renameat2`` RENAME_EXCHANGE, macOS ``renamex_np``
    RENAME_SWAP) and the old one, now at ``source``, is deleted. Where no swap exists (Windows,
    some network file systems) the old directory is renamed aside first; a process killed
    between the two renames leaves it at `replaced_aside`, and `recover_directory` puts it
    back. Callers serialise replacements of one target (a lock).
    """
    source, target = Path(source), Path(target)
    recover_directory(target)
    if not target.exists():
        os.rename(source, target)
    elif _exchange(source, target):
        shutil.rmtree(source)
    else:
        aside = replaced_aside(target)
        os.rename(target, aside)
        os.rename(source, target)
        shutil.rmtree(aside)
    _sync_directory(target.parent)


def recover_directory(target: str | Path) -> None:
    """Finish or undo a `replace_directory` that was killed between its two renames."""
    target = Path(target)
    aside = replaced_aside(target)
    if not aside.exists():
        return
    if target.exists():
        shutil.rmtree(aside)  # the new directory is in place: drop the old one
    else:
        os.rename(aside, target)  # killed before the new one arrived: the old one is back


def _sync_directory(directory: Path) -> None:
    # makes the renames durable across a power failure; Windows cannot open a directory
    if sys.platform == "win32":
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
