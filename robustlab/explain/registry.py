"""Attribution methods by name, in the shape of every room: register, list, create.

A method is ``fn(model, images, target, **options) -> (N, H, W)`` in a module of its own that
registers it (``@register_attribution("ig", rank_by_magnitude=True)``); its keyword options
are read from its signature. ``robustlab.explain.attribute`` is the front door that
batches, resolves targets and freezes the model around any of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor

from robustlab.registry import Registry

AttributionFn = Callable[..., Tensor]

ATTRIBUTIONS: Registry[AttributionFn] = Registry("attribution method")
_FIXED_ARGS = ("model", "images", "target")
_RANKED_BY_MAGNITUDE: set[str] = set()


def register_attribution(
    name: str, rank_by_magnitude: bool = False
) -> Callable[[AttributionFn], AttributionFn]:
    """Decorator that makes ``fn(model, images, target, **options)`` available as
    ``attribute(..., method=name)``. ``rank_by_magnitude``: the map is signed and pixels are
    ranked by |value| (gradient methods); otherwise by value (CAM: evidence for the class)."""
    register = ATTRIBUTIONS.register(name)

    def decorator(fn: AttributionFn) -> AttributionFn:
        register(fn)
        if rank_by_magnitude:
            _RANKED_BY_MAGNITUDE.add(name.lower())
        return fn

    return decorator


def list_attributions() -> list[str]:
    """Names accepted by [`create_attribution`][robustlab.explain.create_attribution] and
    ``attribute(method=...)``, sorted."""
    return sorted(ATTRIBUTIONS.names())


def attribution_options(name: str) -> dict[str, object]:
    """Keyword options of a method and their defaults."""
    return ATTRIBUTIONS.options(name, skip=_FIXED_ARGS)


def create_attribution(name: str, **options: object) -> Callable[..., Tensor]:
    """The method ``name`` with ``options`` bound: ``fn(model, images, target) -> (N, H, W)``.

    An unknown name or option is one ConfigError line naming the valid ones. The returned
    callable is the raw method: ``robustlab.explain.attribute`` adds batching and targets.
    """
    fn = ATTRIBUTIONS.get(name)
    ATTRIBUTIONS.check_options(name, options, skip=_FIXED_ARGS)
    return functools.partial(fn, **options)


def ranks_by_magnitude(name: str) -> bool:
    """Whether the method's pixels are ranked by |value| (a signed gradient map)."""
    ATTRIBUTIONS.get(name)
    return name.lower() in _RANKED_BY_MAGNITUDE
