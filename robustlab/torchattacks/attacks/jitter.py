"""`Jitter`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.jitter import Jitter as Port

from robustlab.torchattacks.adapted import adapted

Jitter = adapted(Port, __name__)

__all__ = ["Jitter"]
