"""Adversarial-example detection: the Mahalanobis detector of Lee et al. (2018), the
max-softmax baseline, detection metrics, evaluation protocols and a detector-aware attack."""

from robustlab.detection.adaptive import AdaptiveDetectorLoss, adaptive_attack
from robustlab.detection.baseline import msp_score
from robustlab.detection.mahalanobis import DEFAULT_NOISE_GRID, MahalanobisDetector
from robustlab.detection.metrics import detection_metrics
from robustlab.detection.protocols import DetectionProtocol, evaluate_detection
from robustlab.detection.report import AttackKey, DetectionKey, DetectionReport

__all__ = [
    "AttackKey",
    "DetectionKey",
    "DetectionProtocol",
    "DetectionReport",
    "DEFAULT_NOISE_GRID",
    "AdaptiveDetectorLoss",
    "MahalanobisDetector",
    "adaptive_attack",
    "detection_metrics",
    "evaluate_detection",
    "msp_score",
]
