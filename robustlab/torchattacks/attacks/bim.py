"""`BIM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.bim import BIM as Port

from robustlab.torchattacks.adapted import adapted

BIM = adapted(Port, __name__)

__all__ = ["BIM"]
