"""`FFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.ffgsm import FFGSM as Port

from robustlab.torchattacks.adapted import adapted

FFGSM = adapted(Port, __name__)

__all__ = ["FFGSM"]
