"""Detectors by name, for configs (``detector=mahalanobis | kd_bu | lid``) and saved files.

The one module that imports every concrete detector: each is registered here under its
``name`` (the name its saved files and results carry), so neither the
[`Detector`][robustlab.detection.Detector] interface nor the storage format needs to know them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from robustlab.detection.base import Detector
from robustlab.detection.kernel_density import KernelDensityDetector
from robustlab.detection.lid import LIDDetector
from robustlab.detection.mahalanobis import MahalanobisDetector
from robustlab.detection.storage import saved_detector_name
from robustlab.errors import CheckpointError, ConfigError
from robustlab.registry import Registry

DetectorClass = type[Detector]

DETECTORS: Registry[DetectorClass] = Registry("detector")


def register_detector(name: str) -> Callable[[DetectorClass], DetectorClass]:
    """Decorator that makes a [`Detector`][robustlab.detection.Detector] subclass available as
    ``create_detector(name)``.

    ``name`` is also the class's ``name`` (what saved files and results carry): an unnamed
    class takes it, a class named otherwise is an error.
    """
    register = DETECTORS.register(name)

    def decorator(cls: DetectorClass) -> DetectorClass:
        if cls.name and cls.name != name:
            raise ConfigError(f"{cls.__name__} is named {cls.name!r}: register it as {cls.name!r}")
        cls.name = name
        return register(cls)

    return decorator


def list_detectors() -> list[str]:
    """Names accepted by [`create_detector`][robustlab.detection.create_detector], in registration
    order."""
    return DETECTORS.names()


def create_detector(name: str, **options: Any) -> Detector:
    """An unfitted detector by name; ``options`` are its constructor's keyword arguments."""
    cls = DETECTORS.get(name)
    DETECTORS.check_options(name, options)
    try:
        return cls(**options)
    except TypeError as err:
        raise ConfigError(f"detector {name!r}: {err}") from err


def load_detector(path: str | Path, model: nn.Module) -> Detector:
    """Whichever detector ``path`` holds (written by its ``save``), attached to ``model``."""
    name = saved_detector_name(path)
    if not isinstance(name, str) or name not in DETECTORS:
        known = ", ".join(DETECTORS.names())
        raise CheckpointError(f"{path} holds an unknown detector {name!r}; known: {known}")
    cls = DETECTORS.get(name)
    if not hasattr(cls, "load"):
        raise CheckpointError(f"detector {name!r} cannot be loaded: it has no load(path, model)")
    return cls.load(path, model)


register_detector("mahalanobis")(MahalanobisDetector)
register_detector("kd_bu")(KernelDensityDetector)
register_detector("lid")(LIDDetector)
