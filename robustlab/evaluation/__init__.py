"""Robustness evaluation: what a model's accuracy is under attack, and how far to trust it.

- :func:`robust_accuracy`: accuracy under one attack over a whole eps grid in one call,
  attacking only the examples still correct (PGD covers the grid as one eps-continuation
  stream, :mod:`robustlab.evaluation.continuation`).
- :func:`worst_case`: the worst-case suite (APGD-CE, APGD-T, Square, each on the survivors of
  the ones before): the per-example worst case that reports lead with.
- :func:`evaluate_robustness`: several attacks' curves, the suite on what they left standing,
  the kept adversarial images and the gradient-masking checks, as a :class:`RobustnessReport`.
- :func:`gradient_masking_warnings`: the gradient-masking checks on any curves, with
  :func:`large_eps_check` and :func:`gradient_health` as optional inputs.
- :func:`l0_robustness`: sparse attacks over budgets of changed pixels.
- :func:`wilson_interval`: the 95% interval every accuracy carries.
- :func:`evaluate`: ANY model's worst case and every named check (:mod:`.checks`, EOT for a
  randomized forward, :mod:`.eot`) in one call, as an :class:`EvaluationCard`.

The attack algorithms live in :mod:`robustlab.attacks`; nothing there imports this package.
"""

from robustlab.evaluation.card import EvaluationCard
from robustlab.evaluation.checks import Check
from robustlab.evaluation.eot import InputNoise, MajorityVote
from robustlab.evaluation.grid import EpsCurve, EpsPoint, robust_accuracy
from robustlab.evaluation.l0 import L0Curve, L0Report, l0_robustness
from robustlab.evaluation.masking import (
    GradientHealth,
    gradient_health,
    gradient_masking_warnings,
    large_eps_check,
)
from robustlab.evaluation.model_evaluation import evaluate
from robustlab.evaluation.robustness import RobustnessReport, evaluate_robustness
from robustlab.evaluation.stats import wilson_interval
from robustlab.evaluation.suite import SUITES, worst_case
from robustlab.evaluation.worst_case_result import WorstCaseResult

__all__ = [
    "SUITES",
    "Check",
    "EpsCurve",
    "EpsPoint",
    "EvaluationCard",
    "GradientHealth",
    "InputNoise",
    "L0Curve",
    "L0Report",
    "MajorityVote",
    "RobustnessReport",
    "WorstCaseResult",
    "evaluate",
    "evaluate_robustness",
    "gradient_health",
    "gradient_masking_warnings",
    "l0_robustness",
    "large_eps_check",
    "robust_accuracy",
    "wilson_interval",
    "worst_case",
]
