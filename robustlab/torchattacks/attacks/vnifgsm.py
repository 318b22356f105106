"""`VNIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.vnifgsm import VNIFGSM as Port

from robustlab.torchattacks.adapted import adapted

VNIFGSM = adapted(Port, __name__)

__all__ = ["VNIFGSM"]
