"""Model registry in the style of timm: ``@register_model`` + ``create_model(name, ...)``.

A factory has the signature ``factory(num_classes, in_channels, *, mean=None, std=None,
option=default, ...)``; its keyword-only options are the model's documented knobs, so an
unknown option can be reported at creation time instead of failing deep inside a constructor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from robustlab.errors import ConfigError
from robustlab.registry import Registry

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
_FIXED_ARGS = ("num_classes", "in_channels", "mean", "std")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that makes ``factory`` available as ``create_model(name, ...)``."""
    return MODELS.register(name)


def list_models() -> list[str]:
    """Names accepted by [`create_model`][robustlab.models.create_model], sorted."""
    return sorted(MODELS.names())


def model_options(name: str) -> dict[str, object]:
    """Keyword options of a registered model and their defaults."""
    return MODELS.options(name, skip=_FIXED_ARGS)


def create_model(
    name: str,
    num_classes: int,
    in_channels: int,
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build a registered model that takes [0, 1] images and returns logits.

    ``mean``/``std`` (per channel, or one value for all) are stored as buffers and applied
    inside ``forward``; ``kwargs`` are the model's options (see
    [`model_options`][robustlab.models.model_options]).
    """
    factory = MODELS.get(name)
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{arg} must be a positive integer, got {value!r}")
    MODELS.check_options(name, kwargs, skip=_FIXED_ARGS)
    return factory(num_classes, in_channels, mean=mean, std=std, **kwargs)


def model_param_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN statistics and mean/std are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
