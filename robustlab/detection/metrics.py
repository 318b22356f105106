"""Detection metrics of Lee et al. (2018) with adversarial examples as the positive class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from robustlab.errors import DataError

TPR_LEVEL = 0.95
ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def _as_array(scores: ArrayLike, name: str) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(array) == 0:
        raise DataError(
            f"{name} is empty: detection metrics need both clean and adversarial scores"
        )
    if not np.isfinite(array).all():
        raise DataError(f"{name} contains NaN or inf: check the detector")
    return array


def detection_metrics(scores_negative: ArrayLike, scores_positive: ArrayLike) -> dict[str, float]:
    """AUROC, TNR at 95% TPR, best detection accuracy and AUPR (higher score = positive).

    ``scores_negative`` are clean (in-distribution) scores, ``scores_positive`` adversarial
    ones. ``tnr_at_tpr95``: true-negative rate at the first threshold that detects at least 95%
    of the positives. ``detection_accuracy``: ``max_t 0.5 * (TPR(t) + TNR(t))`` (balanced, as
    in the paper). ``aupr``: average precision with adversarial examples as positives.
    """
    negative = _as_array(scores_negative, "scores_negative")
    positive = _as_array(scores_positive, "scores_positive")
    targets = np.r_[np.zeros(len(negative)), np.ones(len(positive))]
    scores = np.r_[negative, positive]
    fpr, tpr, _ = roc_curve(targets, scores)
    first = int(np.argmax(tpr >= TPR_LEVEL))
    return {
        "auroc": float(roc_auc_score(targets, scores)),
        "tnr_at_tpr95": float(1.0 - fpr[first]),
        "detection_accuracy": float(np.max(0.5 * (tpr + 1.0 - fpr))),
        "aupr": float(average_precision_score(targets, scores)),
    }
