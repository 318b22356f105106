"""`Square`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.square import Square as Port

from robustlab.torchattacks.adapted import adapted

Square = adapted(Port, __name__)

__all__ = ["Square"]
