"""Defense registry in the style of timm: ``@register_defense`` + ``create_defense(name, ...)``.

A defense is a dataclass of its options (one field per setting, ranges and choices in the
field's ``metadata``) with a method that builds its training objective. The dataclass is the
whole description of the defense: ``create_defense`` checks the options against it, and the
command line uses the same fields as the schema of ``defense=<name>``, so adding a defense is
one objective file (objective + registered options), one yaml and nothing else.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from robustlab.errors import ConfigError
from robustlab.registry import Registry
from robustlab.training.objectives.base import Objective
from robustlab.training.robust_monitor import HeldOutRobustness

D = TypeVar("D", bound="Defense")


def bounded(default: Any, low: float | None = None, high: float | None = None, **kw: Any) -> Any:
    """A dataclass field whose values must lie in ``[low, high]`` (``exclusive_low=True``:
    ``(low, high]``); a list value is checked item by item."""
    return field(default=default, metadata={"range": (low, high), **kw})


def one_of(default: Any, *choices: Any) -> Any:
    """A dataclass field whose value must be one of ``choices``."""
    return field(default=default, metadata={"choices": choices})


@dataclass
class HeldOutCheck:
    """PGD accuracy on a fixed validation batch after every epoch (size, PGD steps, eps)."""

    size: int
    steps: int
    eps: float


class Defense:
    """Base of the registered defense options; subclasses are dataclasses.

    Only `objective` is required. The other hooks describe what a defense needs
    besides its objective: a teacher trained first (distillation), a held-out robustness
    check each epoch, the training noise a smoothing certificate should use.
    """

    name = "defense"

    def objective(self, teacher: nn.Module | None = None) -> Objective:
        """The training objective (``teacher``: the trained teacher, for distillation)."""
        raise NotImplementedError

    def teacher(self) -> tuple[Objective, int | None] | None:
        """The teacher's objective and epochs (None: ``train.epochs``), or None for no teacher."""
        return None

    def heldout_check(self) -> HeldOutCheck | None:
        """The per-epoch held-out PGD check, or None."""
        return None

    def noise_sigma(self) -> float | None:
        """The std of the Gaussian training noise (a smoothing certificate's sigma), or None."""
        return None


_HELDOUT_STEPS = inspect.signature(HeldOutRobustness).parameters["steps"].default


@dataclass
class HeldOutOptions:
    """The held-out check's settings, shared by the adversarial defenses (off by default)."""

    monitor_heldout: bool = False
    heldout_size: int = bounded(128, 1)
    heldout_steps: int = bounded(_HELDOUT_STEPS, 1)

    def heldout_check(self) -> HeldOutCheck | None:
        """PGD at the defense's eps on ``heldout_size`` validation examples, when enabled."""
        if not self.monitor_heldout:
            return None
        return HeldOutCheck(self.heldout_size, self.heldout_steps, self.eps)


DEFENSES: Registry[Callable[..., Defense]] = Registry("defense")


def register_defense(name: str) -> Callable[[type[D]], type[D]]:
    """Class decorator that makes a ``Defense`` dataclass available as ``create_defense(name)``."""

    def decorator(cls: type[D]) -> type[D]:
        if not dataclasses.is_dataclass(cls) or not issubclass(cls, Defense):
            raise TypeError(f"defense {name!r} must be a dataclass subclassing Defense")
        cls.name = name
        return DEFENSES.register(name)(cls)

    return decorator


def list_defenses() -> list[str]:
    """Names accepted by `create_defense`, sorted."""
    return sorted(DEFENSES.names())


def defense_options(name: str) -> type[Defense]:
    """The options dataclass of a registered defense (its fields are the defense's settings)."""
    return DEFENSES.get(name)


def create_defense(name: str, **options: Any) -> Defense:
    """The defense ``name`` with ``options``; an unknown option or an out-of-range value is
    one ConfigError line."""
    DEFENSES.check_options(name, options)
    defense = DEFENSES.get(name)(**options)
    for spec in dataclasses.fields(defense):
        check_value(f"{name}.{spec.name}", getattr(defense, spec.name), spec.metadata)
    return defense


def check_value(path: str, value: Any, meta: Any) -> None:
    """ConfigError when ``value`` breaks the ``choices`` or ``range`` of a field's metadata."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"{path}={value!r} is not valid: choose one of {', '.join(map(str, choices))}"
        )
    low, high = meta.get("range", (None, None))
    for item in value if isinstance(value, Sequence) and not isinstance(value, str) else [value]:
        if low is not None and (item < low or (meta.get("exclusive_low") and item == low)):
            bound = ">" if meta.get("exclusive_low") else ">="
            raise ConfigError(f"{path}={item!r} is out of range: it must be {bound} {low}")
        if high is not None and item > high:
            raise ConfigError(f"{path}={item!r} is out of range: it must be <= {high}")
