"""Model registry in the style of timm: ``@register_model`` + ``create_model(name, ...)``.

A factory has the signature ``factory(num_classes, in_channels, mean=None, std=None, *,
option=default, ...)``; its keyword-only options are the model's documented knobs, so an
unknown option can be reported at creation time instead of failing deep inside a constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from robustlab.errors import ConfigError

ModelFactory = Callable[..., nn.Module]

_MODELS: dict[str, ModelFactory] = {}
_FIXED_ARGS = ("num_classes", "in_channels", "mean", "std")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that makes ``factory`` available as ``create_model(name, ...)``."""
    key = name.lower()

    def decorator(factory: ModelFactory) -> ModelFactory:
        previous = _MODELS.get(key)
        if previous is not None and previous.__qualname__ != factory.__qualname__:
            raise ValueError(f"model name '{key}' is already registered by {previous!r}")
        _MODELS[key] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODELS)


def model_options(name: str) -> dict[str, object]:
    """Keyword options of a registered model and their defaults."""
    factory = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.name not in _FIXED_ARGS and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def create_model(
    name: str,
    num_classes: int,
    in_channels: int,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build a registered model that takes [0, 1] images and returns logits.

    ``mean``/``std`` (per channel, or one value for all) are stored as buffers and applied
    inside ``forward``; ``kwargs`` are the model's options (see :func:`model_options`).
    """
    factory = _lookup(name)
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{arg} must be a positive integer, got {value!r}")
    valid = model_options(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"model '{name}' has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return factory(num_classes, in_channels, mean, std, **kwargs)


def model_param_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN statistics and mean/std are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _lookup(name: str) -> ModelFactory:
    factory = _MODELS.get(str(name).lower())
    if factory is None:
        raise ConfigError(f"unknown model '{name}'; valid names: {', '.join(list_models())}")
    return factory
