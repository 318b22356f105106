"""What the detection stage reports: metrics per (attack, eps, protocol), as a typed result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


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

    @property
    def label(self) -> str:
        """The results.json key: ``"pgd@0.1"`` or ``"pgd@0.1|unseen(fgsm@0.1)"``."""
        if self.protocol == "unseen" and self.fitted_on is not None:
            return f"{self.attack.label}|unseen({self.fitted_on.label})"
        return self.attack.label


@dataclass
class DetectionReport:
    """Detection metrics per entry (see :func:`robustlab.detection.evaluate_detection`)."""

    entries: dict[DetectionKey, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, key: DetectionKey | AttackKey | tuple | str) -> dict[str, Any]:
        """The entry of a DetectionKey, or the known-protocol entry of an attack key."""
        if not isinstance(key, DetectionKey):
            key = DetectionKey(as_attack_key(key))
        return self.entries[key]

    def labels(self) -> list[str]:
        """The results.json keys of the entries, in order."""
        return [key.label for key in self.entries]

    def to_results(self) -> dict[str, Any]:
        """``{"detection": {label: metrics}}`` and the stage's warnings."""
        detection = {key.label: dict(entry) for key, entry in self.entries.items()}
        return {"detection": detection, "warnings": list(self.warnings)}
