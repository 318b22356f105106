"""`TIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.tifgsm import TIFGSM as Port

from robustlab.torchattacks.adapted import adapted

TIFGSM = adapted(Port, __name__)

__all__ = ["TIFGSM"]
