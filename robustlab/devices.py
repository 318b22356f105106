"""Where a run computes and how it repeats: device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from robustlab.errors import ConfigError


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
