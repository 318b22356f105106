"""Every name torchattacks 3.5 exports (``torchattacks.__all__``, wrappers included), with
torchattacks' constructor signature, positional and keyword alike, for robustlab's catalogue
(`robustlab.attacks.build_attack`); the drop-in classes themselves are `robustlab.torchattacks`.

`NATIVE` names robustlab's own implementations (`robustlab.attacks.fgsm`,
``pgd``, ``apgd``, ``apgdt``, ``square``, ``multiattack``); `ADAPTED` names the
torchattacks classes reached through `robustlab.attacks.adapter.TorchattacksAttack`
(built here, one line each).
``LGV`` works through the adapter: it trains its surrogate models on the ``trainloader`` it
is given, then attacks them (a transfer attack).
"""

from __future__ import annotations

import torchattacks

from robustlab.attacks.adapter import adapt

#: robustlab's native implementations of torchattacks names.
NATIVE = (
    "FGSM",
    "PGD",
    "PGDL2",
    "APGD",
    "APGDT",
    "Square",
    "MultiAttack",
)

VANILA = adapt(torchattacks.VANILA)
GN = adapt(torchattacks.GN)
BIM = adapt(torchattacks.BIM)
RFGSM = adapt(torchattacks.RFGSM)
EOTPGD = adapt(torchattacks.EOTPGD)
FFGSM = adapt(torchattacks.FFGSM)
TPGD = adapt(torchattacks.TPGD)
MIFGSM = adapt(torchattacks.MIFGSM)
UPGD = adapt(torchattacks.UPGD)
DIFGSM = adapt(torchattacks.DIFGSM)
TIFGSM = adapt(torchattacks.TIFGSM)
Jitter = adapt(torchattacks.Jitter)
NIFGSM = adapt(torchattacks.NIFGSM)
PGDRS = adapt(torchattacks.PGDRS)
SINIFGSM = adapt(torchattacks.SINIFGSM)
VMIFGSM = adapt(torchattacks.VMIFGSM)
VNIFGSM = adapt(torchattacks.VNIFGSM)
SPSA = adapt(torchattacks.SPSA)
JSMA = adapt(torchattacks.JSMA)
EADL1 = adapt(torchattacks.EADL1)
EADEN = adapt(torchattacks.EADEN)
PIFGSM = adapt(torchattacks.PIFGSM)
PIFGSMPP = adapt(torchattacks.PIFGSMPP)
CW = adapt(torchattacks.CW)
DeepFool = adapt(torchattacks.DeepFool)
PGDRSL2 = adapt(torchattacks.PGDRSL2)
SparseFool = adapt(torchattacks.SparseFool)
OnePixel = adapt(torchattacks.OnePixel)
Pixle = adapt(torchattacks.Pixle)
FAB = adapt(torchattacks.FAB)
AutoAttack = adapt(torchattacks.AutoAttack)
LGV = adapt(torchattacks.LGV)

#: torchattacks classes reached through the adapter.
ADAPTED = (
    "VANILA",
    "GN",
    "BIM",
    "RFGSM",
    "EOTPGD",
    "FFGSM",
    "TPGD",
    "MIFGSM",
    "UPGD",
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
    "DeepFool",
    "PGDRSL2",
    "SparseFool",
    "OnePixel",
    "Pixle",
    "FAB",
    "AutoAttack",
    "LGV",
)

__all__ = [*ADAPTED, "ADAPTED", "NATIVE"]
