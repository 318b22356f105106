"""`APGD`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.apgd import APGD as Port

from robustlab.torchattacks.adapted import adapted

APGD = adapted(Port, __name__)

__all__ = ["APGD"]
