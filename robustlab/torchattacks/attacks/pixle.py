"""`Pixle`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.pixle import Pixle as Port

from robustlab.torchattacks.adapted import adapted

Pixle = adapted(Port, __name__)

__all__ = ["Pixle"]
