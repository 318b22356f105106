"""`DIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.difgsm import DIFGSM as Port

from robustlab.torchattacks.adapted import adapted

DIFGSM = adapted(Port, __name__)

__all__ = ["DIFGSM"]
