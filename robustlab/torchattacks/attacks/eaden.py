"""`EADEN`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.eaden import EADEN as Port

from robustlab.torchattacks.adapted import adapted

EADEN = adapted(Port, __name__)

__all__ = ["EADEN"]
