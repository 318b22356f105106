"""`PGDRSL2`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.pgdrsl2 import PGDRSL2 as Port

from robustlab.torchattacks.adapted import adapted

PGDRSL2 = adapted(Port, __name__)

__all__ = ["PGDRSL2"]
