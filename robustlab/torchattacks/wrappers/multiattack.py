"""`MultiAttack`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.wrappers.multiattack import MultiAttack as Port

from robustlab.torchattacks.adapted import adapted

MultiAttack = adapted(Port, __name__)

__all__ = ["MultiAttack"]
