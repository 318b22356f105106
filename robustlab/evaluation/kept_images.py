"""The kept adversarial images of a finished evaluation, gathered from its curves and suite.

The per-example worst case over several attacks (``("worst_case", eps)`` of
`evaluate_robustness`) takes each row from the attack that broke it
first, at the smallest eps; a survivor of all of them gets the worst-case suite's last attack's
final iterate, or without a suite the first Linf curve's. This sits above the grid evaluator
and the suite (it reads their results), while `robustlab.evaluation.keep`, which they
fill during the run, sits below them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from robustlab.evaluation.grid import EpsCurve
from robustlab.evaluation.keep import WORST_CASE
from robustlab.evaluation.worst_case_result import WorstCaseResult


def collect_adversarial(
    pairs: Sequence[tuple[str, float]],
    curves: Mapping[str, EpsCurve],
    worst: WorstCaseResult,
    images: torch.Tensor,
) -> dict[tuple[str, float], torch.Tensor]:
    """The kept tensors of ``pairs`` from the curves and the suite; every other kept tensor
    (those only the worst case needed) is released."""
    kept = {}
    for key, eps in pairs:
        if key == WORST_CASE:
            kept[(key, eps)] = worst_case_adversarial(curves, worst, eps, images)
        else:
            kept[(key, eps)] = curves[key].adversarial[eps]
    for curve in curves.values():
        curve.adversarial = {}
    worst.adversarial = {}
    return kept


def worst_case_adversarial(
    curves: Mapping[str, EpsCurve], worst: WorstCaseResult, eps: float, images: torch.Tensor
) -> torch.Tensor:
    """Per example, the images of the worst case at ``eps``: those of the attack that broke it
    first (at the smallest eps), the clean image when misclassified clean, and for a survivor
    the suite's last attack's final iterate (without a suite: the first Linf curve's)."""
    linf = {
        key: curve.adversarial[eps]
        for key, curve in curves.items()
        if curve.norm == "Linf" and curve.broken_eps is not None and eps in curve.adversarial
    }
    if eps in worst.adversarial:
        # the suite's tensor holds its own breaks and the survivors' last iterates
        kept = worst.adversarial[eps].clone()
    elif linf:
        kept = next(iter(linf.values())).clone()
    else:
        kept = images.detach().cpu().clone()
    broken = worst.broken_eps <= eps
    for key, tensor in linf.items():
        rows = broken & torch.tensor([by == key for by in worst.broken_by], dtype=torch.bool)
        kept[rows] = tensor[rows]
    return kept


__all__ = ["collect_adversarial", "worst_case_adversarial"]
