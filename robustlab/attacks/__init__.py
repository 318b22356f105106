"""Adversarial attack algorithms: robustlab's own API.

Native attacks: `FGSM`, `PGD` (Linf/L2/L1; early stop, restarts, CE/margin/DLR/custom loss),
`PGDL2`, `APGD` and `APGDT` (Linf/L2/L1), the gradient-free `Square` (random search batched
over rows) and `MultiAttack` (any mix of attacks, each on the survivors of the earlier ones).
They keep robustlab's defaults (PGD and APGD stop early per example) and guarantees: inputs
are checked once per call (images in [0, 1], labels within the model's classes, a Linf eps
below 1), and the model comes back exactly as it was.

Every attack of torchattacks 3.5, native or through robustlab's adapter
(`TorchattacksAttack`), comes by name through `build_attack`, `list_attacks` and
`register_attack` for your own; `AttackSpec` and `attack_factory` make attacks per eps. The
iterative-attack protocol (`IterativeAttack`) is what the evaluation's eps-continuation
drives. Images are float tensors in [0, 1].

For torchattacks' own classes, names and defaults, `import robustlab.torchattacks as
torchattacks` (the drop-in). Evaluation over eps grids, the worst-case suite and the masking
checks live in `robustlab.evaluation`, which builds on this package (never the other way
round). This package imports neither Hydra, OmegaConf, W&B nor torchvision.
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
    list_attacks,
    register_attack,
    takes_eps,
)
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.multiattack import MultiAttack
from robustlab.attacks.pgd import PGD, PGDL2
from robustlab.attacks.saving import load_adversarial
from robustlab.attacks.square import Square
from robustlab.inputs import check_images  # the one input check, shared by every entry

__all__ = [
    "APGD",
    "APGDT",
    "FGSM",
    "MultiAttack",
    "PGD",
    "PGDL2",
    "Square",
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
    "list_attacks",
    "load_adversarial",
    "madry_step_size",
    "register_attack",
    "takes_eps",
]
