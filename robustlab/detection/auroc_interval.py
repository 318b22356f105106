"""How far to trust a detection AUROC: DeLong's confidence interval and the below-chance flag.

An AUROC from 16 clean and 16 adversarial examples is a coarse number: its 95% interval can
span 0.2. DeLong, DeLong & Clarke-Pearson (1988) estimate its variance from the structural
components of the Mann-Whitney statistic (computed here with midranks, O(n log n)); the interval
is the normal one around the AUROC, clipped to [0, 1]. When the classes are perfectly separated
the estimate is 0 and the interval collapses to a point: the sample sizes beside it say how
little that means.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from scipy.stats import rankdata

from robustlab.detection.metrics import ArrayLike, _as_array

CHANCE = 0.5  # the AUROC of a score that ignores the input


def delong_interval(
    scores_negative: ArrayLike, scores_positive: ArrayLike, *, level: float = 0.95
) -> tuple[float, float]:
    """The DeLong confidence interval of the AUROC (higher score = positive).

    Args:
        scores_negative: Scores of the clean examples.
        scores_positive: Scores of the adversarial examples.
        level: The interval's coverage.

    Returns:
        ``(low, high)``, clipped to [0, 1].
    """
    negative = _as_array(scores_negative, "scores_negative")
    positive = _as_array(scores_positive, "scores_positive")
    m, n = len(positive), len(negative)
    ranks = rankdata(np.r_[positive, negative])  # midranks: ties count one half
    # per positive: the share of negatives it outranks; per negative: of positives above it
    v10 = (ranks[:m] - rankdata(positive)) / n
    v01 = 1.0 - (ranks[m:] - rankdata(negative)) / m
    auroc = float(v10.mean())
    variance = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = NormalDist().inv_cdf(0.5 + level / 2) * float(np.sqrt(variance))
    return max(0.0, auroc - half), min(1.0, auroc + half)


def below_chance(auroc: float | None) -> bool:
    """Whether an AUROC is below 0.5: the detector ranks clean inputs above adversarial ones,
    the opposite of what its score claims."""
    return auroc is not None and auroc < CHANCE
