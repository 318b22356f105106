"""Evaluation protocols for adversarial-example detection (known and unseen attacks).

Only the validation split ever fits the feature ensemble; the test split is only scored. The
functions that touch test data return scores and metrics, never a fitted object.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from robustlab.detection.adaptive import adaptive_attack
from robustlab.detection.baseline import msp_score
from robustlab.detection.crafting import AttackFn, Split, craft, craft_split, noisy_negatives
from robustlab.detection.mahalanobis import MahalanobisDetector
from robustlab.detection.metrics import TPR_LEVEL, detection_metrics
from robustlab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

POSITIVES_NOTE = (
    "adversarial positives are examples the model classifies correctly when clean and wrongly "
    "when attacked; clean negatives are the correctly classified clean test examples"
)


def evaluate_detection(
    model: nn.Module,
    detector: MahalanobisDetector,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    attacks: dict[str, AttackFn],
    fit_on: str | None = None,
    known: Sequence[str] | None = None,
    unseen: Sequence[str] | None = None,
    noise_std: float = 0.05,
    adaptive: bool = False,
    adaptive_weight: float = 1.0,
    adaptive_steps: int = 10,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, dict]:
    """Detection metrics of ``detector`` (already ``fit`` on clean training data) per attack.

    Keys of the result:
        ``"<attack>"`` (e.g. ``"pgd@0.1"``), protocol ``"known"``: the ensemble is fitted on
        validation adversarials of that attack and tested on its test adversarials.
        ``"<attack>|unseen(<fit_on>)"``, protocol ``"unseen"``: fitted on the validation
        adversarials of ``fit_on`` (e.g. FGSM), tested on ``<attack>``.
    ``known`` and ``unseen`` choose the attack keys of each protocol (default: every attack
    for the known protocol, every attack but ``fit_on`` for the unseen one).
    Each entry holds ``auroc``, ``tnr_at_tpr95``, ``detection_accuracy``, ``aupr``,
    ``n_adversarial``, ``n_clean``, ``robust_accuracy`` (classifier accuracy under the attack
    on all test examples), ``protocol``, ``noise`` (chosen pre-processing), ``positives`` (a
    note) and ``baseline_msp`` (the same metrics for the max-softmax baseline). Negatives for
    the fit are the correct clean validation examples plus Gaussian-noise copies
    (``noise_std``) that stay correctly classified.

    ``adaptive=True`` adds ``"adaptive"`` to each known ``"name@eps"`` entry: a detector-aware PGD
    (``adaptive_attack``, eps parsed from the ``"name@eps"`` key, ``adaptive_steps`` steps)
    against the ensemble fitted for that entry, with its robust accuracy, detection metrics
    and ``evasion_rate`` (share of correct test examples misclassified *and* scored below
    the threshold that catches 95% of the non-adaptive adversarials), next to the
    non-adaptive ``evasion_rate``. The detector is left fitted on the last ensemble fitted.
    """
    if detector.model is not model:
        raise ConfigError(
            "evaluate_detection: detector.fit(...) must have been called with this model"
        )
    if fit_on is not None and fit_on not in attacks:
        raise ConfigError(f"fit_on={fit_on!r} is not one of the attacks ({', '.join(attacks)})")
    val = craft_split(model, val_images, val_labels, attacks, batch_size, "validation")
    noisy = noisy_negatives(model, val.clean, val.labels, noise_std, seed, batch_size)
    test = craft_split(model, test_images, test_labels, attacks, batch_size, "test")
    results: dict[str, dict] = {}
    for key in attacks if known is None else known:
        if not _fit_on_validation(detector, val, noisy, key, test, results, key):
            continue
        results[key] = _test_entry(model, detector, test, key, "known", batch_size)
        # the adaptive attack is an eps-ball PGD: it pairs with the "name@eps" attacks only,
        # not with minimal-perturbation attacks such as CW or DeepFool
        if adaptive and "@" in key:
            results[key]["adaptive"] = _adaptive_entry(
                model,
                detector,
                test,
                key,
                results[key],
                adaptive_weight,
                adaptive_steps,
                batch_size,
            )
    others = [key for key in (attacks if unseen is None else unseen) if key != fit_on]
    if fit_on is not None and others:
        unseen_keys = {key: f"{key}|unseen({fit_on})" for key in others}
        if _fit_on_validation(detector, val, noisy, fit_on, test, results, *unseen_keys.values()):
            for key, name in unseen_keys.items():
                entry = _test_entry(model, detector, test, key, "unseen", batch_size)
                results[name] = {**entry, "fitted_on": fit_on}
    return results


def _fit_on_validation(
    detector: MahalanobisDetector,
    val: Split,
    noisy: torch.Tensor,
    key: str,
    test: Split,
    results: dict[str, dict],
    *result_keys: str,
) -> bool:
    """Fit the ensemble on validation data of ``key``; on too little data, say so instead."""
    try:
        detector.fit_ensemble(val.clean, val.attacked[key].positives, noisy)
    except DataError as err:
        logger.warning("detection %s skipped: %s", key, err)
        for name in result_keys:
            attacked = test.attacked[name.split("|", 1)[0]]
            entry = _metrics_entry(torch.zeros(0), torch.zeros(0), attacked.robust_accuracy)
            entry.update(n_clean=len(test.clean), n_adversarial=len(attacked.positives))
            results[name] = {**entry, "note": f"ensemble not fitted on {key}: {err}"}
        return False
    return True


def _test_entry(
    model: nn.Module,
    detector: MahalanobisDetector,
    test: Split,
    key: str,
    protocol: str,
    batch_size: int,
) -> dict:
    crafted = test.attacked[key]
    entry = _metrics_entry(
        detector.score(test.clean), detector.score(crafted.positives), crafted.robust_accuracy
    )
    entry.update(protocol=protocol, noise=detector.noise, positives=POSITIVES_NOTE)
    if len(crafted.positives):
        entry["baseline_msp"] = detection_metrics(
            msp_score(model, test.clean, batch_size),
            msp_score(model, crafted.positives, batch_size),
        )
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


def _adaptive_entry(
    model: nn.Module,
    detector: MahalanobisDetector,
    test: Split,
    key: str,
    known: dict,
    weight: float,
    steps: int,
    batch_size: int,
) -> dict:
    """Detector-aware PGD against the ensemble currently fitted (white box)."""
    try:
        eps = float(key.rsplit("@", 1)[1])
    except (IndexError, ValueError) as err:
        raise ConfigError(
            f"adaptive=True needs attack keys like 'pgd@0.1' to read eps, got {key!r}"
        ) from err
    attack = adaptive_attack(model, detector, eps, 2.5 * eps / max(steps, 1), steps, weight)
    crafted = craft(model, attack, test.clean, test.labels, test.total, batch_size)
    clean_scores = detector.score(test.clean)
    adv_scores = detector.score(crafted.positives)
    entry = _metrics_entry(clean_scores, adv_scores, crafted.robust_accuracy)
    if len(adv_scores) and known.get("auroc") is not None:
        # Same bar as the non-adaptive attack: the threshold catching 95% of its positives.
        known_scores = detector.score(test.attacked[key].positives).numpy()
        threshold = float(np.quantile(known_scores, 1.0 - TPR_LEVEL))
        entry["evasion_rate"] = float((adv_scores < threshold).sum()) / len(clean_scores)
    entry.update(eps=eps, steps=steps, weight=weight, protocol="adaptive")
    return entry
