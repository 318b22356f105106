"""`AutoAttack`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.autoattack import AutoAttack as Port

from robustlab.torchattacks.adapted import adapted

AutoAttack = adapted(Port, __name__)

__all__ = ["AutoAttack"]
