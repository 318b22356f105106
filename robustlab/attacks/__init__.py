"""Adversarial attack algorithms.

Native FGSM, PGD and APGD/APGD-T (Linf/L2/L1, early stop, restarts, CE/margin/DLR/custom loss)
and the gradient-free Square (random search batched over rows), drop-in interchangeable with
torchattacks (including its ``set_mode_targeted_*``, ``get_logits`` and ``save`` API); every
attack, native or torchattacks, by name through :func:`create_attack` (also called
:func:`build_attack`), :func:`list_attacks` and :func:`register_attack` for your own; the
iterative-attack protocol (:class:`IterativeAttack`) that the evaluation's eps-continuation
drives. Images are float
tensors in [0, 1]. Evaluation over eps grids, the worst-case suite and the masking checks live
in :mod:`robustlab.evaluation`, which builds on this package (never the other way round).
This package imports neither Hydra, OmegaConf, W&B nor torchvision.
"""

from robustlab.attacks.apgd import APGD
from robustlab.attacks.base import Attack, AttackResult, check_images
from robustlab.attacks.catalogue import (
    AttackSpec,
    attack_factory,
    attack_norm,
    attack_options,
    build_attack,
    create_attack,
    list_attacks,
    register_attack,
    takes_eps,
)
from robustlab.attacks.compat import load_adversarial
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.pgd import PGD
from robustlab.attacks.square import Square

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "Square",
    "Attack",
    "AttackResult",
    "AttackSpec",
    "IterativeAttack",
    "attack_factory",
    "attack_norm",
    "attack_options",
    "build_attack",
    "check_images",
    "create_attack",
    "list_attacks",
    "load_adversarial",
    "madry_step_size",
    "register_attack",
    "takes_eps",
]
