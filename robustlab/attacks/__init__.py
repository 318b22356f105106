"""Adversarial attack algorithms, and every attack of torchattacks 3.5 under its own name.

``import robustlab.attacks as torchattacks`` runs a torchattacks script unchanged: every name
of ``torchattacks.__all__`` (wrappers included) is here with torchattacks' constructor
signature and base-class surface (``set_mode_*``, ``set_normalization_used``, ``set_device``,
``set_model_training_mode``, ``get_logits``, ``supported_mode``, ``save`` in torchattacks' file
format, ``load``). :data:`TORCHATTACKS_NATIVE` names robustlab's own implementations (FGSM,
PGD, PGDL2, APGD, APGDT, Square, MultiAttack: native FGSM, PGD and APGD/APGD-T (Linf/L2/L1,
early stop, restarts, CE/margin/DLR/custom loss) and the gradient-free Square (random search
batched over rows)); :data:`TORCHATTACKS_ADAPTED` names the torchattacks classes run through
robustlab's adapter. Every attack, native or torchattacks, also comes by name through
:func:`create_attack` (also called :func:`build_attack`), :func:`list_attacks` and
:func:`register_attack` for your own; the iterative-attack protocol (:class:`IterativeAttack`)
is what the evaluation's eps-continuation drives. Images are float tensors in [0, 1].
Evaluation over eps grids, the worst-case suite and the masking checks live in
:mod:`robustlab.evaluation`, which builds on this package (never the other way round). This
package imports neither Hydra, OmegaConf, W&B nor torchvision.
"""

from robustlab.attacks.adapter import TorchattacksAttack, adapt
from robustlab.attacks.apgd import APGD
from robustlab.attacks.apgdt import APGDT
from robustlab.attacks.base import Attack, AttackResult
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
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.multiattack import MultiAttack
from robustlab.attacks.pgd import PGD, PGDL2
from robustlab.attacks.ported import ADAPTED as TORCHATTACKS_ADAPTED
from robustlab.attacks.ported import (
    BIM,
    CW,
    DIFGSM,
    EADEN,
    EADL1,
    EOTPGD,
    FAB,
    FFGSM,
    GN,
    JSMA,
    LGV,
    MIFGSM,
    NIFGSM,
    PGDRS,
    PGDRSL2,
    PIFGSM,
    PIFGSMPP,
    RFGSM,
    SINIFGSM,
    SPSA,
    TIFGSM,
    TPGD,
    UPGD,
    VANILA,
    VMIFGSM,
    VNIFGSM,
    AutoAttack,
    DeepFool,
    Jitter,
    OnePixel,
    Pixle,
    SparseFool,
)
from robustlab.attacks.ported import NATIVE as TORCHATTACKS_NATIVE
from robustlab.attacks.saving import load_adversarial
from robustlab.attacks.square import Square
from robustlab.inputs import check_images  # the one input check, shared by every entry

__all__ = [
    "APGD",
    "APGDT",
    "AutoAttack",
    "BIM",
    "CW",
    "DeepFool",
    "DIFGSM",
    "EADEN",
    "EADL1",
    "EOTPGD",
    "FAB",
    "FFGSM",
    "FGSM",
    "GN",
    "Jitter",
    "JSMA",
    "LGV",
    "MIFGSM",
    "MultiAttack",
    "NIFGSM",
    "OnePixel",
    "PGD",
    "PGDL2",
    "PGDRS",
    "PGDRSL2",
    "PIFGSM",
    "PIFGSMPP",
    "Pixle",
    "RFGSM",
    "SINIFGSM",
    "SparseFool",
    "SPSA",
    "Square",
    "TIFGSM",
    "TPGD",
    "UPGD",
    "VANILA",
    "VMIFGSM",
    "VNIFGSM",
    "TORCHATTACKS_ADAPTED",
    "TORCHATTACKS_NATIVE",
    "Attack",
    "AttackResult",
    "AttackSpec",
    "IterativeAttack",
    "TorchattacksAttack",
    "adapt",
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
