"""Model zoo: a registry, one ResNet family (SE as a block option; WideResNets are members of it),
MgNet and a small CNN; ``import_weights`` reads reference checkpoints.

Every model takes [0, 1] images, normalises inside with ``mean``/``std`` buffers and returns
logits; ``forward_features(x)`` gives one feature map per stage for the detector.
"""

from robustlab.models import (  # noqa: F401  (importing registers the models)
    mgnet,
    resnet,
    small_cnn,
    wide_resnet,
)
from robustlab.models.base import ClassifierHead, FeatureClassifier
from robustlab.models.import_weights import import_weights
from robustlab.models.inference import predict
from robustlab.models.layers import BasicBlock, Normalize, PreActBlock, SqueezeExcite
from robustlab.models.mgnet import MgNet
from robustlab.models.registry import (
    create_model,
    list_models,
    model_options,
    model_param_count,
    register_model,
)
from robustlab.models.resnet import ResNet
from robustlab.models.se_overhead import SEOverhead, se_block_params, se_overhead
from robustlab.models.small_cnn import SmallCNN

__all__ = [
    "BasicBlock",
    "ClassifierHead",
    "FeatureClassifier",
    "MgNet",
    "Normalize",
    "PreActBlock",
    "ResNet",
    "SEOverhead",
    "SmallCNN",
    "SqueezeExcite",
    "create_model",
    "import_weights",
    "list_models",
    "model_options",
    "model_param_count",
    "predict",
    "register_model",
    "se_block_params",
    "se_overhead",
]
