"""The exact torchattacks drop-in: ``import robustlab.torchattacks as torchattacks``.

torchattacks 3.5.1's public surface, nothing more: ``__all__`` (its 39 names), ``__wrapper__``,
``__version__`` (the torchattacks version mirrored), the submodules a script imports
(``attack``, ``attacks.<name>``, ``wrappers.<name>``), the `Attack` base class for custom
attacks, and torchattacks' defaults and behaviours. `FGSM`, `PGD` and `PGDL2` run robustlab's
native implementations (`robustlab.torchattacks.native`), whose seeded output equals
torchattacks'; every other class runs torchattacks' own code on robustlab's base class
(`robustlab.torchattacks.adapted`). Every call checks its inputs once and gives the model back
as it came in (`robustlab.torchattacks.guard`).

robustlab's own attacks, defaults (early stopping) and catalogue are `robustlab.attacks`.
"""

from robustlab.torchattacks.attacks.apgd import APGD
from robustlab.torchattacks.attacks.apgdt import APGDT
from robustlab.torchattacks.attacks.autoattack import AutoAttack
from robustlab.torchattacks.attacks.bim import BIM
from robustlab.torchattacks.attacks.cw import CW
from robustlab.torchattacks.attacks.deepfool import DeepFool
from robustlab.torchattacks.attacks.difgsm import DIFGSM
from robustlab.torchattacks.attacks.eaden import EADEN
from robustlab.torchattacks.attacks.eadl1 import EADL1
from robustlab.torchattacks.attacks.eotpgd import EOTPGD
from robustlab.torchattacks.attacks.fab import FAB
from robustlab.torchattacks.attacks.ffgsm import FFGSM
from robustlab.torchattacks.attacks.fgsm import FGSM
from robustlab.torchattacks.attacks.gn import GN
from robustlab.torchattacks.attacks.jitter import Jitter
from robustlab.torchattacks.attacks.jsma import JSMA
from robustlab.torchattacks.attacks.mifgsm import MIFGSM
from robustlab.torchattacks.attacks.nifgsm import NIFGSM
from robustlab.torchattacks.attacks.onepixel import OnePixel
from robustlab.torchattacks.attacks.pgd import PGD
from robustlab.torchattacks.attacks.pgdl2 import PGDL2
from robustlab.torchattacks.attacks.pgdrs import PGDRS
from robustlab.torchattacks.attacks.pgdrsl2 import PGDRSL2
from robustlab.torchattacks.attacks.pifgsm import PIFGSM
from robustlab.torchattacks.attacks.pifgsmpp import PIFGSMPP
from robustlab.torchattacks.attacks.pixle import Pixle
from robustlab.torchattacks.attacks.rfgsm import RFGSM
from robustlab.torchattacks.attacks.sinifgsm import SINIFGSM
from robustlab.torchattacks.attacks.sparsefool import SparseFool
from robustlab.torchattacks.attacks.spsa import SPSA
from robustlab.torchattacks.attacks.square import Square
from robustlab.torchattacks.attacks.tifgsm import TIFGSM
from robustlab.torchattacks.attacks.tpgd import TPGD
from robustlab.torchattacks.attacks.upgd import UPGD
from robustlab.torchattacks.attacks.vanila import VANILA
from robustlab.torchattacks.attacks.vmifgsm import VMIFGSM
from robustlab.torchattacks.attacks.vnifgsm import VNIFGSM
from robustlab.torchattacks.wrappers.lgv import LGV
from robustlab.torchattacks.wrappers.multiattack import MultiAttack

__version__ = "3.5.1"
__all__ = [
    "VANILA",
    "GN",
    "FGSM",
    "BIM",
    "RFGSM",
    "PGD",
    "EOTPGD",
    "FFGSM",
    "TPGD",
    "MIFGSM",
    "UPGD",
    "APGD",
    "APGDT",
    "DIFGSM",
    "TIFGSM",
    "Jitter",
    "NIFGSM",
    "PGDRS",
    "SINIFGSM",
    "VMIFGSM",
    "VNIFGSM",
    "SPSA",
    "JSMA",
    "EADL1",
    "EADEN",
    "PIFGSM",
    "PIFGSMPP",
    "CW",
    "PGDL2",
    "DeepFool",
    "PGDRSL2",
    "SparseFool",
    "OnePixel",
    "Pixle",
    "FAB",
    "AutoAttack",
    "Square",
    "MultiAttack",
    "LGV",
]
__wrapper__ = [
    "LGV",
    "MultiAttack",
]
