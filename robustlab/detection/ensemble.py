"""The feature ensemble shared by every detector: logistic regression over per-layer scores.

Lee et al. (2018), Feinman et al. (2017) and Ma et al. (2018) all combine their raw scores this
way. Positives are adversarial examples, negatives clean (and noisy) ones, so the decision
function is an "adversarial-ness" score. A detector setting that needs adversarial data to be
chosen (Mahalanobis' pre-processing noise, the kernel-density bandwidth) is chosen on a
stratified half of the validation data by the AUROC of a regression fitted on the other half.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from robustlab.errors import DataError

MIN_EXAMPLES_PER_SIDE = 2


def fit_logistic(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights ``(L,)`` and intercept so that ``scores @ w + b`` is the LR decision function.

    The features are standardised for the solver and the scaling is folded back into the
    weights, so applying the ensemble (and differentiating through it) is one affine map.
    """
    center = scores.mean(axis=0)
    scale = scores.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    regression = LogisticRegression(class_weight="balanced", max_iter=1000)
    regression.fit((scores - center) / scale, targets)
    weights = regression.coef_[0] / scale
    intercept = float(regression.intercept_[0] - (center * weights).sum())
    return weights, intercept


def half_split(targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random halves (fit, select) of the example indices."""
    rng = np.random.default_rng(seed)
    fit, select = [], []
    for value in (0, 1):
        idx = rng.permutation(np.flatnonzero(targets == value))
        half = len(idx) // 2
        fit.append(idx[:half])
        select.append(idx[half:])
    return np.concatenate(fit), np.concatenate(select)


def check_targets(targets: np.ndarray) -> None:
    """Raise DataError unless both sides have enough examples to fit and select."""
    n_pos, n_neg = int((targets == 1).sum()), int((targets == 0).sum())
    if min(n_pos, n_neg) < MIN_EXAMPLES_PER_SIDE:
        raise DataError(
            f"the ensemble needs at least {MIN_EXAMPLES_PER_SIDE} adversarial and "
            f"{MIN_EXAMPLES_PER_SIDE} clean validation examples, got {n_pos} and {n_neg}: "
            "use more validation data or a stronger attack"
        )


def stack_examples(
    clean: torch.Tensor, adversarial: torch.Tensor, noisy: torch.Tensor | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """CPU images ``[clean, noisy, adversarial]`` and their targets (1 = adversarial), checked."""
    parts = [clean] if noisy is None or len(noisy) == 0 else [clean, noisy]
    negatives = torch.cat([p.detach().cpu() for p in parts])
    images = torch.cat([negatives, adversarial.detach().cpu()])
    targets = np.r_[np.zeros(len(negatives)), np.ones(len(adversarial))].astype(np.int64)
    check_targets(targets)
    return images, targets


def choose_setting(
    scores_by_setting: dict[float, np.ndarray], targets: np.ndarray, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """Setting (e.g. noise magnitude) with the best held-out AUROC (ties go to the smaller)."""
    check_targets(targets)
    fit_idx, select_idx = half_split(targets, seed)
    aurocs: dict[float, float] = {}
    for setting, scores in scores_by_setting.items():
        weights, intercept = fit_logistic(scores[fit_idx], targets[fit_idx])
        decision = scores[select_idx] @ weights + intercept
        aurocs[setting] = float(roc_auc_score(targets[select_idx], decision))
    best = max(sorted(aurocs), key=lambda n: (aurocs[n], -n))
    return best, aurocs
