"""Adversarial attacks and robustness evaluation.

Native FGSM and PGD (Linf/L2, early stop, restarts, CE/margin/custom loss) that are drop-in
interchangeable with torchattacks, every torchattacks attack by name through
:func:`build_attack`, the eps-grid evaluator :func:`robust_accuracy` (PGD over the whole grid as
one eps-continuation stream), the multi-attack :func:`evaluate_robustness` and gradient-masking
checks. Images are in [0, 1].
This package imports neither Hydra, OmegaConf, W&B nor torchvision.
"""

from robustlab.attacks.base import Attack, AttackResult
from robustlab.attacks.catalogue import attack_options, build_attack, list_attacks, takes_eps
from robustlab.attacks.evaluation import EpsCurve, EpsPoint, robust_accuracy
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.masking import gradient_health, gradient_masking_warnings, large_eps_check
from robustlab.attacks.pgd import PGD
from robustlab.attacks.report import AttackSpec, RobustnessReport, evaluate_robustness
from robustlab.attacks.stats import wilson_interval

__all__ = [
    "FGSM",
    "PGD",
    "Attack",
    "AttackResult",
    "AttackSpec",
    "EpsCurve",
    "EpsPoint",
    "RobustnessReport",
    "attack_options",
    "build_attack",
    "evaluate_robustness",
    "gradient_health",
    "gradient_masking_warnings",
    "large_eps_check",
    "list_attacks",
    "robust_accuracy",
    "takes_eps",
    "wilson_interval",
]
