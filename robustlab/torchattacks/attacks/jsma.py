"""`JSMA`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.jsma import JSMA as Port

from robustlab.torchattacks.adapted import adapted

JSMA = adapted(Port, __name__)

__all__ = ["JSMA"]
