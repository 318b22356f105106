"""`PIFGSMPP`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.pifgsmpp import PIFGSMPP as Port

from robustlab.torchattacks.adapted import adapted

PIFGSMPP = adapted(Port, __name__)

__all__ = ["PIFGSMPP"]
