"""`NIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.nifgsm import NIFGSM as Port

from robustlab.torchattacks.adapted import adapted

NIFGSM = adapted(Port, __name__)

__all__ = ["NIFGSM"]
