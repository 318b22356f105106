"""Adversarial attacks and robustness evaluation.

Native FGSM, PGD and APGD/APGD-T (Linf/L2/L1, early stop, restarts, CE/margin/DLR/custom loss)
and the gradient-free Square (random search batched over rows) that are drop-in
interchangeable with torchattacks (including its ``set_mode_targeted_*``, ``get_logits`` and
``save`` API), every torchattacks attack by name through
:func:`build_attack`, the public iterative-attack protocol (:class:`IterativeAttack`), the
eps-grid evaluator :func:`robust_accuracy` (PGD over the whole grid as one eps-continuation
stream), the worst-case suite :func:`worst_case` (APGD-CE, APGD-T, Square on the survivors of
one another), the multi-attack :func:`evaluate_robustness` and gradient-masking checks.
Images are float tensors in [0, 1].
This package imports neither Hydra, OmegaConf, W&B nor torchvision.
"""

from robustlab.attacks.apgd import APGD
from robustlab.attacks.base import Attack, AttackResult, check_images
from robustlab.attacks.catalogue import attack_options, build_attack, list_attacks, takes_eps
from robustlab.attacks.compat import load_adversarial
from robustlab.attacks.evaluation import EpsCurve, EpsPoint, robust_accuracy
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.masking import gradient_health, gradient_masking_warnings, large_eps_check
from robustlab.attacks.pgd import PGD
from robustlab.attacks.report import AttackSpec, RobustnessReport, evaluate_robustness
from robustlab.attacks.square import Square
from robustlab.attacks.stats import wilson_interval
from robustlab.attacks.suite import SUITES, WorstCaseResult, worst_case

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "SUITES",
    "Square",
    "Attack",
    "AttackResult",
    "AttackSpec",
    "EpsCurve",
    "EpsPoint",
    "IterativeAttack",
    "RobustnessReport",
    "WorstCaseResult",
    "attack_options",
    "build_attack",
    "check_images",
    "evaluate_robustness",
    "gradient_health",
    "gradient_masking_warnings",
    "large_eps_check",
    "list_attacks",
    "load_adversarial",
    "madry_step_size",
    "robust_accuracy",
    "takes_eps",
    "wilson_interval",
    "worst_case",
]
