"""`APGDT`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.apgdt import APGDT as Port

from robustlab.torchattacks.adapted import adapted

APGDT = adapted(Port, __name__)

__all__ = ["APGDT"]
