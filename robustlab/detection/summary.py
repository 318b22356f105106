"""What the detection stage reports: metrics per (attack, eps, protocol), as a typed result.

Each entry's AUROC comes with its 95% DeLong interval (``auroc_ci``) computed from the kept
scores, and an AUROC below chance is a warning: both say how far a detection number goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from robustlab.detection.auroc_interval import below_chance, delong_interval
from robustlab.detection.storage import write_detection_scores


class AttackKey(NamedTuple):
    """An attack at one budget: ``("pgd", 0.1)``; ``eps`` is None for CW, DeepFool..."""

    attack: str
    eps: float | None = None

    @property
    def label(self) -> str:
        """The results.json spelling: ``"pgd@0.1"``, or ``"cw"`` without eps."""
        return self.attack if self.eps is None else f"{self.attack}@{float(self.eps)!r}"


def as_attack_key(key: AttackKey | tuple | str) -> AttackKey:
    """An AttackKey from a key, a ``(attack, eps)`` tuple or an attack name without eps."""
    if isinstance(key, str):
        return AttackKey(key)
    return AttackKey(*key)


class DetectionKey(NamedTuple):
    """One detection entry: which attack is tested, under which protocol, fitted on what.

    ``protocol``: ``"known"`` (the ensemble is fitted on the same attack's validation
    adversarials) or ``"unseen"`` (fitted on ``fitted_on``'s).
    """

    attack: AttackKey
    protocol: str = "known"
    fitted_on: AttackKey | None = None
    detector: str = "mahalanobis"

    @property
    def label(self) -> str:
        """The results.json key: ``"pgd@0.1"`` or ``"pgd@0.1|unseen(fgsm@0.1)"``."""
        if self.protocol == "unseen" and self.fitted_on is not None:
            return f"{self.attack.label}|unseen({self.fitted_on.label})"
        return self.attack.label


# per entry label, per curve (a detector's name or "msp"): scores of clean and adversarial
ScoreSets = dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]
SCORES_FILE = "detection_scores.safetensors"


@dataclass
class DetectionReport:
    """Detection metrics per entry, as
    [`evaluate_detection`][robustlab.detection.evaluate_detection] returns them.

    ``detectors``: the detectors evaluated, the first being the primary one whose entries
    results.json keeps under ``"detection"`` (the others under ``"detectors"``). ``scores``: the
    per-example scores behind every entry, for ROC curves.
    """

    entries: dict[DetectionKey, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)
    scores: ScoreSets = field(default_factory=dict)

    def __getitem__(self, key: DetectionKey | AttackKey | tuple | str) -> dict[str, Any]:
        """The entry of a DetectionKey, or the primary detector's known entry of an attack."""
        if not isinstance(key, DetectionKey):
            primary = self.detectors[0] if self.detectors else "mahalanobis"
            key = DetectionKey(as_attack_key(key), detector=primary)
        return self.entries[key]

    def labels(self, detector: str | None = None) -> list[str]:
        """The results.json keys of one detector's entries (default: the primary one)."""
        detector = detector or (self.detectors[0] if self.detectors else "mahalanobis")
        return [key.label for key in self.entries if key.detector == detector]

    def by_detector(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{detector: {label: metrics}}`` for every detector evaluated, each AUROC with its
        95% DeLong interval (``auroc_ci``) where its scores were kept."""
        table: dict[str, dict[str, dict[str, Any]]] = {}
        for key, entry in self.entries.items():
            curves = self.scores.get(key.label, {})
            shown = _with_interval(entry, curves.get(key.detector))
            if isinstance(entry.get("baseline_msp"), dict):
                shown["baseline_msp"] = _with_interval(entry["baseline_msp"], curves.get("msp"))
            table.setdefault(key.detector, {})[key.label] = shown
        return table

    def to_results(self) -> dict[str, Any]:
        """``{"detection": {label: metrics}}`` of the primary detector, ``"detectors"`` with every
        detector's when there are several, and the stage's warnings (an AUROC below chance
        among them)."""
        table = self.by_detector()
        primary = self.detectors[0] if self.detectors else next(iter(table), None)
        results: dict[str, Any] = {"detection": table.get(primary, {})}
        if len(table) > 1:
            results["detectors"] = table
        return results | {"warnings": list(self.warnings) + below_chance_warnings(table)}

    def save_artifacts(self, directory: str | Path) -> list[Path]:
        """Per-example scores beside results.json (``detection_scores.safetensors``), from which
        the report draws ROC curves."""
        if not self.scores:
            return []
        path = Path(directory) / SCORES_FILE
        write_detection_scores(path, self.scores)
        return [path]


def _with_interval(
    entry: dict[str, Any], scores: tuple[torch.Tensor, torch.Tensor] | None
) -> dict[str, Any]:
    """A copy of ``entry`` with ``auroc_ci`` when it has an AUROC and its scores are kept."""
    shown = dict(entry)
    if entry.get("auroc") is not None and scores is not None and all(len(s) for s in scores):
        shown["auroc_ci"] = list(delong_interval(*scores))
    return shown


def below_chance_warnings(table: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One warning per detector entry whose AUROC is below 0.5 (its score is inverted)."""
    return [
        f"detection AUROC below chance: {detector} on {label} scores {entry['auroc']:.2f} "
        "(clean inputs score higher than adversarial ones)"
        for detector, entries in table.items()
        for label, entry in entries.items()
        if below_chance(entry.get("auroc"))
    ]
