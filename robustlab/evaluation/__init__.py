"""Robustness evaluation: what a model's accuracy is under attack, and how far to trust it.

- [`evaluate`][robustlab.evaluation.evaluate]: ANY model's worst case and every named check in
  one call, as an [`EvaluationCard`][robustlab.evaluation.EvaluationCard].
- [`worst_case`][robustlab.evaluation.worst_case]: the worst-case suite (APGD-CE, APGD-T,
  Square, each on the survivors of the ones before; APGD-CE and APGD-DLR with EOT for a
  randomized model): the per-example worst case that reports lead with.
- [`evaluate_robustness`][robustlab.evaluation.evaluate_robustness]: several attacks' curves,
  the suite on what they left standing, the kept adversarial images and the checks.
- [`robust_accuracy`][robustlab.evaluation.robust_accuracy]: accuracy under one attack over a
  whole eps grid in one call, attacking only the examples still correct.
- [`Judge`][robustlab.evaluation.Judge]: the one arbiter of "is this prediction correct" in an
  evaluation (a majority vote for a randomized model).
- The named checks ([`Check`][robustlab.evaluation.Check]) and the masking warnings derived
  from them; [`wilson_interval`][robustlab.evaluation.wilson_interval], the 95% interval
  every accuracy carries; [`l0_robustness`][robustlab.evaluation.l0_robustness] for sparse
  attacks.

All three entry points take everything after ``eps_grid`` by keyword, with the same defaults.
The attack algorithms live in `robustlab.attacks`; nothing there imports this package.
"""

from robustlab.evaluation.card import EvaluationCard
from robustlab.evaluation.checks import (
    CHECK_NAMES,
    Check,
    gradient_free_breaks,
    large_eps_verdict,
    probability_outputs,
    stochastic_forward,
    zero_gradients,
)
from robustlab.evaluation.checks_curves import (
    iterative_weaker,
    margin_stronger,
    rising_accuracy,
)
from robustlab.evaluation.checks_optimization import still_rising
from robustlab.evaluation.checks_run import gradient_masking_warnings, masking_checks
from robustlab.evaluation.eot import InputNoise, MajorityVote
from robustlab.evaluation.grid import EpsCurve, EpsPoint, robust_accuracy
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.l0 import L0Curve, L0Report, l0_robustness
from robustlab.evaluation.masking import GradientHealth, gradient_health, large_eps_check
from robustlab.evaluation.model_evaluation import evaluate
from robustlab.evaluation.robustness import RobustnessReport, evaluate_robustness
from robustlab.evaluation.stats import wilson_interval
from robustlab.evaluation.suite import SUITES, worst_case
from robustlab.evaluation.worst_case_result import WorstCaseResult

__all__ = [
    "CHECK_NAMES",
    "SUITES",
    "Check",
    "EpsCurve",
    "EpsPoint",
    "EvaluationCard",
    "GradientHealth",
    "InputNoise",
    "Judge",
    "L0Curve",
    "L0Report",
    "MajorityVote",
    "RobustnessReport",
    "WorstCaseResult",
    "evaluate",
    "evaluate_robustness",
    "gradient_free_breaks",
    "gradient_health",
    "gradient_masking_warnings",
    "iterative_weaker",
    "l0_robustness",
    "large_eps_check",
    "large_eps_verdict",
    "margin_stronger",
    "masking_checks",
    "probability_outputs",
    "rising_accuracy",
    "robust_accuracy",
    "still_rising",
    "stochastic_forward",
    "wilson_interval",
    "worst_case",
    "zero_gradients",
]
