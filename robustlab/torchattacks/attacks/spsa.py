"""`SPSA`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.spsa import SPSA as Port

from robustlab.torchattacks.adapted import adapted

SPSA = adapted(Port, __name__)

__all__ = ["SPSA"]
