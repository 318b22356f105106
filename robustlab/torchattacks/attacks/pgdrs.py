"""`PGDRS`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.pgdrs import PGDRS as Port

from robustlab.torchattacks.adapted import adapted

PGDRS = adapted(Port, __name__)

__all__ = ["PGDRS"]
