"""`MIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.mifgsm import MIFGSM as Port

from robustlab.torchattacks.adapted import adapted

MIFGSM = adapted(Port, __name__)

__all__ = ["MIFGSM"]
