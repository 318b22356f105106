"""Building blocks shared by the model family."""

from robustlab.models.layers.blocks import BLOCKS, BasicBlock, PreActBlock, conv1x1, conv3x3
from robustlab.models.layers.normalize import Normalize
from robustlab.models.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "BLOCKS",
    "BasicBlock",
    "Normalize",
    "PreActBlock",
    "SqueezeExcite",
    "conv1x1",
    "conv3x3",
]
