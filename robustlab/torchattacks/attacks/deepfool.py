"""`DeepFool`: torchattacks' own implementation on robustlab's `Attack` base class."""

from torchattacks.attacks.deepfool import DeepFool as Port

from robustlab.torchattacks.adapted import adapted

DeepFool = adapted(Port, __name__)

__all__ = ["DeepFool"]
