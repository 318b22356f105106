"""`GN`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.gn import GN as Port

from robustlab.torchattacks.adapted import adapted

GN = adapted(Port, __name__)

__all__ = ["GN"]
