"""`OnePixel`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.onepixel import OnePixel as Port

from robustlab.torchattacks.adapted import adapted

OnePixel = adapted(Port, __name__)

__all__ = ["OnePixel"]
