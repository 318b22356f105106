"""`VANILA`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.vanila import VANILA as Port

from robustlab.torchattacks.adapted import adapted

VANILA = adapted(Port, __name__)

__all__ = ["VANILA"]
