"""`TPGD`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.tpgd import TPGD as Port

from robustlab.torchattacks.adapted import adapted

TPGD = adapted(Port, __name__)

__all__ = ["TPGD"]
