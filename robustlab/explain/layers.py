"""Where the CAM family looks inside a model: the stage modules, the linear head, and the
activations of a layer together with the gradient of a class score with respect to them.

Registered models (``FeatureClassifier``) keep their stages in ``model.stages`` and, for
pre-activation ResNets, a final BN-ReLU in ``model.final_act`` that runs after the last stage;
the feature map of the last stage is that module's output. Nothing here changes a forward pass:
layers are only observed with forward hooks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.errors import ConfigError


def stage_layer(model: nn.Module, stage: int = -1) -> nn.Module:
    """The module whose output is ``model.forward_features(x)[stage]``."""
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.ModuleList) or len(stages) == 0:
        raise ConfigError(
            f"{type(model).__name__} has no `stages`: pass layer=<module> to choose the layer"
        )
    if not -len(stages) <= stage < len(stages):
        raise ConfigError(f"stage {stage} out of range: the model has {len(stages)} stages")
    index = stage % len(stages)
    final_act = getattr(model, "final_act", None)
    last = index == len(stages) - 1
    if last and final_act is not None and not isinstance(final_act, nn.Identity):
        return final_act
    return stages[index]


def resolve_layer(model: nn.Module, stage: int, layer: nn.Module | None) -> nn.Module:
    """``layer`` when given, else the module of ``stage``."""
    return layer if layer is not None else stage_layer(model, stage)


def linear_head(model: nn.Module) -> nn.Linear:
    """The linear layer of a global-average-pooling + linear head (``ClassifierHead``)."""
    head = getattr(model, "head", None)
    pool, fc = getattr(head, "pool", None), getattr(head, "fc", None)
    pooled = isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))
    if not (pooled and isinstance(fc, nn.Linear) and hasattr(model, "forward_features")):
        raise ConfigError(
            f"CAM needs forward_features and a global-average-pooling + linear head; "
            f"{type(model).__name__} has none: use method='gradcam' instead"
        )
    return fc


def activations_and_grads(
    model: nn.Module, images: Tensor, target: Tensor, layer: nn.Module
) -> tuple[Tensor, Tensor]:
    """Output A of ``layer`` (N, K, h, w) and d logit_target / dA, from one forward pass.

    Examples are independent in eval mode, so the gradient of the summed target logits is each
    example's own gradient.
    """
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.enable_grad():
            # parameters may be frozen (model_context): the input must carry the graph
            logits = model(images.detach().requires_grad_(True))
            if len(captured) != 1:
                raise ConfigError(f"layer ran {len(captured)} times in one forward pass, not once")
            score = logits.gather(1, target[:, None]).sum()
            (grads,) = torch.autograd.grad(score, captured[0])
    finally:
        handle.remove()
    return captured[0].detach(), grads.detach()


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, h, w) -> (N, H, W), bilinear; a map already at ``size`` is returned as it is."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
