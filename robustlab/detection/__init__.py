"""Adversarial-example detection behind one interface (``Detector``): the Mahalanobis detector
of Lee et al. (2018), kernel density + Bayesian uncertainty (Feinman et al. 2017), local
intrinsic dimensionality (Ma et al. 2018), the max-softmax baseline, detection metrics,
evaluation protocols and a detector-aware attack.

Detectors by name: [`create_detector`][robustlab.detection.create_detector],
[`list_detectors`][robustlab.detection.list_detectors],
[`register_detector`][robustlab.detection.register_detector] (for your own);
[`load_detector`][robustlab.detection.load_detector] reads back whichever detector
``detector.save(path)`` wrote (safetensors + JSON, never pickle). A detector of your own
subclasses ``Detector`` and, for ``save``/``load``, ``robustlab.detection.storage.SaveLoadMixin``.
"""

from robustlab.detection.adaptive import AdaptiveDetectorLoss, adaptive_attack
from robustlab.detection.base import Detector
from robustlab.detection.baseline import msp_score
from robustlab.detection.kernel_density import KernelDensityDetector
from robustlab.detection.lid import LIDDetector
from robustlab.detection.mahalanobis import DEFAULT_NOISE_GRID, MahalanobisDetector
from robustlab.detection.metrics import detection_metrics
from robustlab.detection.protocols import DetectionProtocol, evaluate_detection
from robustlab.detection.registry import (
    create_detector,
    list_detectors,
    load_detector,
    register_detector,
)
from robustlab.detection.summary import AttackKey, DetectionKey, DetectionReport

__all__ = [
    "AttackKey",
    "DetectionKey",
    "DetectionProtocol",
    "DetectionReport",
    "DEFAULT_NOISE_GRID",
    "AdaptiveDetectorLoss",
    "Detector",
    "KernelDensityDetector",
    "LIDDetector",
    "MahalanobisDetector",
    "adaptive_attack",
    "create_detector",
    "detection_metrics",
    "evaluate_detection",
    "list_detectors",
    "load_detector",
    "msp_score",
    "register_detector",
]
