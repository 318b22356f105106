"""`PIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.pifgsm import PIFGSM as Port

from robustlab.torchattacks.adapted import adapted

PIFGSM = adapted(Port, __name__)

__all__ = ["PIFGSM"]
