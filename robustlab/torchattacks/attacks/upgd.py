"""`UPGD`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.upgd import UPGD as Port

from robustlab.torchattacks.adapted import adapted

UPGD = adapted(Port, __name__)

__all__ = ["UPGD"]
