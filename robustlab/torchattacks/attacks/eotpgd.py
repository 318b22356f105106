"""`EOTPGD`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.eotpgd import EOTPGD as Port

from robustlab.torchattacks.adapted import adapted

EOTPGD = adapted(Port, __name__)

__all__ = ["EOTPGD"]
