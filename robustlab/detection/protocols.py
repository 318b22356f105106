"""Evaluation protocols for adversarial-example detection (known and unseen attacks).

Only the validation split ever fits the feature ensemble; the test split is only scored. The
functions that touch test data return scores and metrics, never a fitted object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robustlab.detection.adaptive import adaptive_attack
from robustlab.detection.baseline import msp_score
from robustlab.detection.features import batches, frozen_eval, model_device
from robustlab.detection.mahalanobis import MahalanobisDetector
from robustlab.detection.metrics import TPR_LEVEL, detection_metrics
from robustlab.errors import ConfigError, DataError
from robustlab.runtime import progress

logger = logging.getLogger(__name__)

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
POSITIVES_NOTE = (
    "adversarial positives are examples the model classifies correctly when clean and wrongly "
    "when attacked; clean negatives are the correctly classified clean test examples"
)


@dataclass
class Crafted:
    """One split under one attack: the successful adversarial examples and the accuracy."""

    positives: torch.Tensor
    robust_accuracy: float


@dataclass
class Split:
    """Clean examples the model gets right, and every attack's successful examples."""

    clean: torch.Tensor
    labels: torch.Tensor
    total: int
    attacked: dict[str, Crafted]


def evaluate_detection(
    model: nn.Module,
    detector: MahalanobisDetector,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    attacks: dict[str, AttackFn],
    fit_on: str | None = None,
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
        adversarials of ``fit_on`` (e.g. FGSM), tested on ``<attack>`` (every other attack).
    Each entry holds ``auroc``, ``tnr_at_tpr95``, ``detection_accuracy``, ``aupr``,
    ``n_adversarial``, ``n_clean``, ``robust_accuracy`` (classifier accuracy under the attack
    on all test examples), ``protocol``, ``noise`` (chosen pre-processing), ``positives`` (a
    note) and ``baseline_msp`` (the same metrics for the max-softmax baseline). Negatives for
    the fit are the correct clean validation examples plus Gaussian-noise copies
    (``noise_std``) that stay correctly classified.

    ``adaptive=True`` adds ``"adaptive"`` to each known entry: a detector-aware PGD
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
    val = _craft_split(model, val_images, val_labels, attacks, batch_size, "validation")
    noisy = _noisy_negatives(model, val.clean, val.labels, noise_std, seed, batch_size)
    test = _craft_split(model, test_images, test_labels, attacks, batch_size, "test")
    results: dict[str, dict] = {}
    for key in attacks:
        if not _fit_on_validation(detector, val, noisy, key, test, results, key):
            continue
        results[key] = _test_entry(model, detector, test, key, "known", batch_size)
        if adaptive:
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
    others = [key for key in attacks if key != fit_on]
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


def _predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    with frozen_eval(model), torch.no_grad():
        for x in batches(images, batch_size, model_device(model), "predict"):
            out.append(model(x).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _run_attack(
    model: nn.Module, attack: AttackFn, images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> torch.Tensor:
    device = model_device(model)
    out = []
    for start in progress(range(0, len(images), batch_size), desc="attack"):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        out.append(attack(x, y).detach().cpu())
    return torch.cat(out)


def _craft(
    model: nn.Module,
    attack: AttackFn,
    clean: torch.Tensor,
    labels: torch.Tensor,
    total: int,
    batch_size: int,
) -> Crafted:
    """Attack the correctly classified examples; keep those whose label flips."""
    adv = _run_attack(model, attack, clean, labels, batch_size)
    still_correct = _predict(model, adv, batch_size) == labels
    return Crafted(adv[~still_correct], float(still_correct.sum()) / max(total, 1))


def _craft_split(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: dict[str, AttackFn],
    batch_size: int,
    name: str,
) -> Split:
    images, labels = images.detach().cpu(), labels.detach().cpu().long()
    correct = _predict(model, images, batch_size) == labels
    clean, clean_labels = images[correct], labels[correct]
    attacked = {}
    for key, attack in attacks.items():
        attacked[key] = _craft(model, attack, clean, clean_labels, len(images), batch_size)
        logger.info(
            "%s %s: %d of %d correct examples flipped",
            name,
            key,
            len(attacked[key].positives),
            len(clean),
        )
    return Split(clean, clean_labels, len(images), attacked)


def _noisy_negatives(
    model: nn.Module,
    clean: torch.Tensor,
    labels: torch.Tensor,
    std: float,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """Gaussian-noise copies of clean examples that the model still classifies correctly."""
    if std <= 0 or len(clean) == 0:
        return clean[:0]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    noisy = (clean + std * noise).clamp(0.0, 1.0)
    return noisy[_predict(model, noisy, batch_size) == labels]


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
    crafted = _craft(model, attack, test.clean, test.labels, test.total, batch_size)
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
