"""`CW`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.cw import CW as Port

from robustlab.torchattacks.adapted import adapted

CW = adapted(Port, __name__)

__all__ = ["CW"]
