"""`VMIFGSM`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.vmifgsm import VMIFGSM as Port

from robustlab.torchattacks.adapted import adapted

VMIFGSM = adapted(Port, __name__)

__all__ = ["VMIFGSM"]
