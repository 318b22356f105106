"""`LGV`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.wrappers.lgv import LGV as Port

from robustlab.torchattacks.adapted import adapted

LGV = adapted(Port, __name__)

__all__ = ["LGV"]
