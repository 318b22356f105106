"""`FAB`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.fab import FAB as Port

from robustlab.torchattacks.adapted import adapted

FAB = adapted(Port, __name__)

__all__ = ["FAB"]
