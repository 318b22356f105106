"""`EADL1`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.eadl1 import EADL1 as Port

from robustlab.torchattacks.adapted import adapted

EADL1 = adapted(Port, __name__)

__all__ = ["EADL1"]
