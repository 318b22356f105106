"""`SINIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.sinifgsm import SINIFGSM as Port

from robustlab.torchattacks.adapted import adapted

SINIFGSM = adapted(Port, __name__)

__all__ = ["SINIFGSM"]
