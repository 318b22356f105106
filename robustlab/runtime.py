"""Small run-time helpers shared by the library: device choice, seeding, progress bars."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from robustlab.errors import ConfigError

T = TypeVar("T")


def resolve_device(name: str | torch.device = "auto", threads: int | None = None) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a usable device.

    ``threads`` caps torch's CPU threads, so parallel jobs on one machine do not oversubscribe it.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if isinstance(name, torch.device):
        return _available(name, str(name))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from err
    return _available(device, name)


def _available(device: torch.device, name: str) -> torch.device:
    """``device``, or one ConfigError line when this machine does not have it."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} was asked for but CUDA is not available: use device=auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device={name} was asked for but this machine has {torch.cuda.device_count()} "
            f"CUDA device(s): use cuda:0 to cuda:{torch.cuda.device_count() - 1} or device=auto"
        )
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and (mps is None or not mps.is_available()):
        raise ConfigError(
            f"device={name} was asked for but MPS (Apple silicon) is not available: use device=auto"
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a CPU run repeats bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress_enabled() -> bool:
    """Progress bars show on a terminal only, unless ROBUSTLAB_PROGRESS=1/0 says otherwise."""
    forced = os.environ.get("ROBUSTLAB_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def progress_bar(
    desc: str,
    total: int | None,
    unit: str = "it",
    leave: bool = False,
    iterable: Iterable[T] | None = None,
) -> tqdm:
    """A tqdm bar that stays quiet when stderr is not a terminal; without ``iterable`` it is
    updated by hand (``bar.update(n)``)."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        leave=leave,
        disable=not progress_enabled(),
        dynamic_ncols=True,
    )


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False
) -> Iterator[T]:
    """Wrap a long loop in a tqdm bar that stays quiet when stderr is not a terminal."""
    return iter(progress_bar(desc, total, leave=leave, iterable=iterable))
