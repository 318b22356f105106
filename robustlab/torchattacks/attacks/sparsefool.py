"""`SparseFool`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.sparsefool import SparseFool as Port

from robustlab.torchattacks.adapted import adapted

SparseFool = adapted(Port, __name__)

__all__ = ["SparseFool"]
