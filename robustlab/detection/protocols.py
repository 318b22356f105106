"""Evaluation protocols for adversarial-example detection (known, unseen and adaptive attacks).

Only the validation split ever fits the feature ensemble; the test split is only scored. The
functions that touch test data return scores and metrics, never a fitted object.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robustlab.attacks.geometry import madry_step_size
from robustlab.detection.adaptive import adaptive_attack
from robustlab.detection.base import Detector
from robustlab.detection.baseline import msp_score
from robustlab.detection.crafting import AttackFn, Split, craft, craft_split, noisy_negatives
from robustlab.detection.metrics import TPR_LEVEL, detection_metrics
from robustlab.detection.summary import AttackKey, DetectionKey, DetectionReport, as_attack_key
from robustlab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

POSITIVES_NOTE = (
    "adversarial positives are examples the model classifies correctly when clean and wrongly "
    "when attacked; clean negatives are the correctly classified clean test examples"
)
Tensors = tuple[torch.Tensor, torch.Tensor]
# parts of a detector's summary() that describe its fitted ensemble, not its chosen settings
ENSEMBLE_KEYS = ("ensemble_weights", "intercept")


@dataclass
class DetectionProtocol:
    """Which entries [`evaluate_detection`][robustlab.detection.evaluate_detection] measures, and
    how.

    ``known``: attack keys of the known-attack protocol (default: every attack). ``unseen``:
    keys tested with the ensemble fitted on ``fit_on`` (default: every attack but ``fit_on``;
    nothing without ``fit_on``). ``noise_std``: Gaussian-noise copies of clean validation
    examples that stay correct join the fit's negatives. ``adaptive``: add a detector-aware PGD
    (``adaptive_steps`` steps, detector term weighted by ``adaptive_weight``) to every known
    entry that has an eps.
    """

    known: Sequence[AttackKey | tuple | str] | None = None
    unseen: Sequence[AttackKey | tuple | str] | None = None
    fit_on: AttackKey | tuple | str | None = None
    noise_std: float = 0.05
    adaptive: bool = False
    adaptive_weight: float = 0.1
    adaptive_steps: int = 10
    seed: int = 0
    batch_size: int = 256


def evaluate_detection(
    model: nn.Module,
    detectors: Detector | Mapping[str, Detector],
    val: Tensors,
    test: Tensors,
    *,
    attacks: Mapping[AttackKey | tuple | str, AttackFn],
    protocol: DetectionProtocol | None = None,
    test_adversarial: Mapping[AttackKey | tuple | str, torch.Tensor] | None = None,
) -> DetectionReport:
    """Detection metrics of each detector (already ``fit`` on clean training data) per attack.

    ``detectors``: one or several by name, all fitted and tested on the same adversarial
    examples; the first is the primary one (results.json's ``"detection"``). ``val``/``test``:
    (images, labels); ``attacks`` keyed by ``AttackKey(name, eps)``. ``test_adversarial``:
    adversarial images already crafted for the whole test split (row i attacks test image i),
    e.g. by the robustness evaluation, used instead of attacking again so that a job has one
    robust accuracy per (attack, eps).

    Each entry holds ``auroc``, ``tnr_at_tpr95``, ``detection_accuracy``, ``aupr``,
    ``evasion_rate``, ``n_adversarial``, ``n_clean``, ``robust_accuracy`` (classifier accuracy
    under the attack on all test examples), ``protocol``, ``noise`` (chosen pre-processing),
    ``positives`` (a note) and ``baseline_msp`` (the max-softmax baseline's metrics); unseen
    entries add ``fitted_on``, adaptive ones (under ``"adaptive"`` of the known entry) the
    attack's ``eps``, ``steps``, ``weight`` and an ``evasion_rate`` measured against the
    threshold that catches 95% of the non-adaptive adversarials. Each detector is left fitted
    on the last ensemble fitted.
    """
    protocol = protocol or DetectionProtocol()
    if isinstance(detectors, Detector):
        detectors = {detectors.name: detectors}
    attacks = {as_attack_key(k): a for k, a in attacks.items()}
    fit_on = _check_inputs(model, detectors, attacks, protocol)
    given = {as_attack_key(k): v for k, v in (test_adversarial or {}).items()}
    bs = protocol.batch_size
    val_split = craft_split(model, *val, attacks, batch_size=bs, name="validation")
    noisy = noisy_negatives(
        model,
        val_split.clean,
        val_split.labels,
        std=protocol.noise_std,
        seed=protocol.seed,
        batch_size=bs,
    )
    test_split = craft_split(model, *test, attacks, batch_size=bs, name="test", given=given)
    report = DetectionReport(detectors=list(detectors))
    known = list(attacks) if protocol.known is None else list(map(as_attack_key, protocol.known))
    wanted = attacks if protocol.unseen is None else map(as_attack_key, protocol.unseen)
    unseen = [k for k in wanted if k != fit_on] if fit_on is not None else []
    for name, detector in detectors.items():
        session = _Session(
            model, name, detector, val=val_split, noisy=noisy, test=test_split, protocol=protocol
        )
        for key in known:
            session.known(key, report)
        if unseen:
            session.unseen(fit_on, unseen, report)
    return report


def _check_inputs(
    model: nn.Module,
    detectors: Mapping[str, Detector],
    attacks: Mapping[AttackKey, AttackFn],
    protocol: DetectionProtocol,
) -> AttackKey | None:
    """One clear error before any attack runs; returns the unseen protocol's fit attack."""
    fit_on = None if protocol.fit_on is None else as_attack_key(protocol.fit_on)
    if any(detector.model is not model for detector in detectors.values()):
        raise ConfigError("evaluate_detection: detector.fit(...) must be called with this model")
    if fit_on is not None and fit_on not in attacks:
        names = ", ".join(k.label for k in attacks)
        raise ConfigError(f"fit_on={fit_on.label!r} is not one of the attacks ({names})")
    return fit_on


@dataclass
class _Session:
    """The crafted splits of one evaluation and the detector they fit."""

    model: nn.Module
    name: str
    detector: Detector
    val: Split
    noisy: torch.Tensor
    test: Split
    protocol: DetectionProtocol

    def known(self, key: AttackKey, report: DetectionReport) -> None:
        """The known-attack entry of ``key``, with its adaptive attack when asked for."""
        entry_key = DetectionKey(key, detector=self.name)
        if not self._fit(key, [entry_key], report):
            return
        entry = self._test_entry(key, "known", report)
        # the adaptive attack is an eps-ball PGD: it pairs with attacks that have an eps,
        # not with minimal-perturbation attacks such as CW or DeepFool
        if self.protocol.adaptive and key.eps is not None:
            entry["adaptive"] = self._adaptive_entry(key, entry)
        report.entries[entry_key] = entry

    def unseen(self, fit_on: AttackKey, keys: list[AttackKey], report: DetectionReport) -> None:
        """Entries for ``keys`` tested with the ensemble fitted on ``fit_on``."""
        entry_keys = [DetectionKey(key, "unseen", fit_on, self.name) for key in keys]
        if not keys or not self._fit(fit_on, entry_keys, report):
            return
        for entry_key in entry_keys:
            entry = self._test_entry(entry_key.attack, "unseen", report, entry_key.label)
            report.entries[entry_key] = {**entry, "fitted_on": fit_on.label}

    def _fit(self, key: AttackKey, entries: list[DetectionKey], report: DetectionReport) -> bool:
        """Fit the ensemble on validation data of ``key``; on too little data, say so instead."""
        try:
            self.detector.fit_ensemble(self.val.clean, self.val.attacked[key].positives, self.noisy)
        except DataError as err:
            message = f"detection ({self.name}) {key.label} skipped: {err}"
            logger.warning(message)
            report.warnings.append(message)
            for entry_key in entries:
                attacked = self.test.attacked[entry_key.attack]
                entry = _metrics_entry(torch.zeros(0), torch.zeros(0), attacked.robust_accuracy)
                entry.update(n_clean=len(self.test.clean), n_adversarial=len(attacked.positives))
                report.entries[entry_key] = {
                    **entry,
                    "note": f"ensemble not fitted on {key.label}: {err}",
                }
            return False
        return True

    def _test_entry(
        self, key: AttackKey, protocol: str, report: DetectionReport, label: str | None = None
    ) -> dict:
        """Metrics of the fitted detector on the test split; its scores (and the max-softmax
        baseline's) are kept in ``report.scores`` under the entry's label."""
        crafted, detector = self.test.attacked[key], self.detector
        clean, adv = detector.score(self.test.clean), detector.score(crafted.positives)
        entry = _metrics_entry(clean, adv, crafted.robust_accuracy)
        settings = {k: v for k, v in detector.summary().items() if k not in ENSEMBLE_KEYS}
        entry.update(protocol=protocol, positives=POSITIVES_NOTE, **settings)
        curves = report.scores.setdefault(label or key.label, {})
        curves[self.name] = (clean, adv)
        if len(crafted.positives):
            if "msp" not in curves:
                bs = self.protocol.batch_size
                curves["msp"] = (
                    msp_score(self.model, self.test.clean, bs),
                    msp_score(self.model, crafted.positives, bs),
                )
            entry["baseline_msp"] = detection_metrics(*curves["msp"])
        return entry

    def _adaptive_entry(self, key: AttackKey, known: dict) -> dict:
        """Detector-aware PGD against the ensemble currently fitted (white box)."""
        p, test, detector = self.protocol, self.test, self.detector
        eps, steps = float(key.eps), p.adaptive_steps
        attack = adaptive_attack(
            self.model,
            detector,
            eps,
            alpha=madry_step_size(eps, steps),
            steps=steps,
            weight=p.adaptive_weight,
        )
        crafted = craft(
            self.model, attack, test.clean, test.labels, total=test.total, batch_size=p.batch_size
        )
        adv_scores = detector.score(crafted.positives)
        entry = _metrics_entry(detector.score(test.clean), adv_scores, crafted.robust_accuracy)
        if len(adv_scores) and known.get("auroc") is not None:
            # Same bar as the non-adaptive attack: the threshold catching 95% of its positives.
            known_scores = detector.score(test.attacked[key].positives).numpy()
            threshold = float(np.quantile(known_scores, 1.0 - TPR_LEVEL))
            entry["evasion_rate"] = float((adv_scores < threshold).sum()) / len(test.clean)
        entry.update(eps=eps, steps=steps, weight=p.adaptive_weight, protocol="adaptive")
        return entry


def _metrics_entry(clean_scores: torch.Tensor, adv_scores: torch.Tensor, robust_acc: float) -> dict:
    entry: dict = {"n_adversarial": len(adv_scores), "n_clean": len(clean_scores)}
    entry["robust_accuracy"] = robust_acc
    if len(adv_scores) and len(clean_scores):
        entry.update(detection_metrics(clean_scores, adv_scores))
        threshold = float(np.quantile(adv_scores.numpy(), 1.0 - TPR_LEVEL))
        entry["evasion_rate"] = float((adv_scores < threshold).sum()) / len(clean_scores)
    else:
        entry.update(dict.fromkeys(("auroc", "tnr_at_tpr95", "detection_accuracy", "aupr")))
        entry["evasion_rate"] = 0.0 if not len(adv_scores) else None
    return entry
