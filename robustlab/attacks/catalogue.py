"""Attack registry: native FGSM/PGD/APGD/Square plus every torchattacks attack, by name.

A native attack takes the name of the torchattacks port it replaces (``apgd``); the port stays
reachable as ``torchattacks.<Name>`` (e.g. ``torchattacks.APGD``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torchattacks
from torch import nn

from robustlab.attacks.adapter import L2_ATTACKS, TorchattacksAttack
from robustlab.attacks.apgd import APGD
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.pgd import PGD
from robustlab.attacks.square import Square
from robustlab.errors import ConfigError

NATIVE: dict[str, Callable[..., object]] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "pgd_l2": lambda model, eps=1.0, alpha=0.2, **kw: PGD(model, eps, alpha, norm="L2", **kw),
    "apgd": APGD,
    "apgd_t": lambda model, loss="dlr", **kw: APGD(model, loss=loss, targeted=True, **kw),
    "square": Square,
}
# Options of pgd_l2 / apgd_t are those of PGD / APGD minus what the variant fixes.
_NATIVE_SIGNATURES = {
    "fgsm": FGSM,
    "pgd": PGD,
    "pgd_l2": PGD,
    "apgd": APGD,
    "apgd_t": APGD,
    "square": Square,
}
TORCHATTACKS_PREFIX = "torchattacks."


def _torchattacks_classes() -> dict[str, type]:
    names = getattr(torchattacks, "__all__", None) or dir(torchattacks)
    classes = {}
    for name in names:
        obj = getattr(torchattacks, name, None)
        if inspect.isclass(obj) and issubclass(obj, torchattacks.attack.Attack):
            classes.setdefault(name.lower(), obj)
    return classes


def list_attacks() -> list[str]:
    """Names accepted by :func:`build_attack`: native ones first, then torchattacks classes."""
    native = list(NATIVE)
    ported = [
        cls.__name__ if key not in NATIVE else TORCHATTACKS_PREFIX + cls.__name__
        for key, cls in _torchattacks_classes().items()
    ]
    return native + ported


def _resolve(name: str) -> tuple[str, Callable[..., object], Callable[..., object]]:
    """(canonical name, factory, callable whose signature lists the options)."""
    key = str(name).lower()
    if key in NATIVE:
        return key, NATIVE[key], _NATIVE_SIGNATURES[key]
    key = key.removeprefix(TORCHATTACKS_PREFIX)
    cls = _torchattacks_classes().get(key)
    if cls is None:
        raise ConfigError(f"unknown attack {name!r}: valid names are {', '.join(list_attacks())}")
    shadowed = key in NATIVE  # a native attack took the plain name
    return (TORCHATTACKS_PREFIX if shadowed else "") + cls.__name__, cls, cls


def attack_options(name: str) -> dict[str, object]:
    """Keyword options of an attack and their defaults (``model`` excluded)."""
    canonical, _, signature_of = _resolve(name)
    params = inspect.signature(signature_of).parameters.values()
    options = {
        p.name: p.default
        for p in params
        if p.name not in ("self", "model") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    if canonical == "pgd_l2":
        options.pop("norm", None)
        options.update(eps=1.0, alpha=0.2)
    elif canonical == "apgd_t":
        options.pop("targeted", None)
        options["loss"] = "dlr"
    elif canonical not in NATIVE:
        options["targeted"] = False  # handled by the wrapper via set_mode_targeted_by_label
    return options


def takes_eps(name: str) -> bool:
    """Whether the attack has an ``eps`` budget (CW and DeepFool minimise the norm instead)."""
    return "eps" in attack_options(name)


def attack_norm(name: str, kwargs: dict | None = None) -> str:
    """The norm an attack's eps (or reported perturbation) is measured in."""
    kwargs = kwargs or {}
    key = str(name).lower().removeprefix(TORCHATTACKS_PREFIX)
    if key == "pgd_l2" or key in L2_ATTACKS:
        return "L2"
    return str(kwargs.get("norm", attack_options(name).get("norm", "Linf")))


def build_attack(name: str, model: nn.Module, **kwargs: object) -> object:
    """Create an attack by name: ``fgsm``, ``pgd``, ``pgd_l2``, ``apgd``, ``apgd_t`` (APGD-T,
    targeted DLR), ``square`` or any torchattacks class (``torchattacks.APGD`` /
    ``torchattacks.Square`` for its ports).

    Every returned attack takes ``(images, labels)`` in [0, 1], returns adversarial images on
    the model's device, offers ``run`` (an :class:`AttackResult`) and restores the model.
    """
    canonical, factory, _ = _resolve(name)
    valid = attack_options(canonical)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"attack {canonical!r} has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    if canonical in NATIVE:
        return factory(model, **kwargs)
    targeted = bool(kwargs.pop("targeted", False))
    try:
        attack = factory(model, **kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"attack {canonical!r} rejected its options {kwargs}: {err}") from err
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    return TorchattacksAttack(attack, model, canonical, targeted=targeted)


@dataclass
class AttackSpec:
    """An attack by name (see ``list_attacks``) with its options.

    ``eps``: the attack's own grid (e.g. L2 radii), else the evaluation's grid. For attacks
    with a step size ``alpha`` and ``steps``, ``kwargs["step_size"]`` sets ``alpha`` as a
    fraction of eps; without either, ``alpha = madry_step_size(eps, steps)`` (``2.5 eps / steps``)
    so the step scales with the budget instead of staying at a fixed 2/255.
    """

    name: str
    kwargs: dict = field(default_factory=dict)
    eps: Sequence[float] | None = None


def attack_factory(spec: AttackSpec, model: nn.Module) -> Callable[[float], object]:
    """``eps -> attack`` for a spec, checking its options once up front."""
    kwargs = dict(spec.kwargs)
    step_size = kwargs.pop("step_size", None)
    options = attack_options(spec.name)
    if "eps" in kwargs:
        raise ConfigError(f"attack {spec.name!r}: give eps through the eps grid, not its options")
    if step_size is not None and "alpha" not in options:
        raise ConfigError(f"attack {spec.name!r} has no step size; remove step_size")

    def make(eps: float) -> object:
        options_now = dict(kwargs)
        if "alpha" in options and "alpha" not in options_now and "steps" in options:
            steps = int(options_now.get("steps", options["steps"]))
            alpha = madry_step_size(eps, steps) if step_size is None else step_size * eps
            options_now["alpha"] = alpha
        return build_attack(spec.name, model, eps=eps, **options_now)

    make(0.0)  # fail on a bad option before any time is spent
    return make


__all__ = [
    "AttackSpec",
    "attack_factory",
    "attack_norm",
    "attack_options",
    "build_attack",
    "list_attacks",
    "takes_eps",
]
