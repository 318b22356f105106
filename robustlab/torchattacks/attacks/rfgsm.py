"""`RFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.rfgsm import RFGSM as Port

from robustlab.torchattacks.adapted import adapted

RFGSM = adapted(Port, __name__)

__all__ = ["RFGSM"]
