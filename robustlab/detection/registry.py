"""Detectors by name, for configs (``detector=mahalanobis | kd_bu | lid``) and saved files."""

from __future__ import annotations

from typing import Any

from robustlab.detection.base import Detector
from robustlab.detection.kernel_density import KernelDensityDetector
from robustlab.detection.lid import LIDDetector
from robustlab.detection.mahalanobis import MahalanobisDetector
from robustlab.errors import ConfigError

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls for cls in (MahalanobisDetector, KernelDensityDetector, LIDDetector)
}


def list_detectors() -> list[str]:
    """Names accepted by :func:`build_detector`, in a fixed order."""
    return list(DETECTORS)


def build_detector(name: str, **options: Any) -> Detector:
    """An unfitted detector by name; ``options`` are its constructor's keyword arguments."""
    cls = DETECTORS.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"unknown detector {name!r}; valid: {', '.join(DETECTORS)}")
    try:
        return cls(**options)
    except TypeError as err:
        raise ConfigError(f"detector {name!r}: {err}") from err
