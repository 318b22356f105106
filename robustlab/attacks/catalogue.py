"""The attack catalogue: register, list and build attacks by name (`build_attack`).

Native attacks (FGSM, PGD, its L2 variant, APGD, APGD-T, Square) are registered beside each
other below; every name of ``torchattacks.__all__`` follows (``DeepFool``, ``MIFGSM``,
``PGDL2``, ``MultiAttack``): robustlab's native class of that name, or the torchattacks class
through robustlab's adapter (`robustlab.attacks.ported`). A native attack takes the name of
the torchattacks port it replaces (``apgd``, ``PGDL2``); the port stays reachable as
``torchattacks.<Name>`` (e.g. ``torchattacks.APGD``). Names ignore case. The classes
themselves, under torchattacks' names and defaults, are `robustlab.torchattacks`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torchattacks
from torch import nn

from robustlab.attacks import ported
from robustlab.attacks.adapter import L2_ATTACKS, adapt
from robustlab.attacks.apgd import APGD
from robustlab.attacks.apgdt import APGDT
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.geometry import madry_step_size
from robustlab.attacks.multiattack import MultiAttack
from robustlab.attacks.pgd import PGD, PGDL2
from robustlab.attacks.square import Square
from robustlab.errors import ConfigError
from robustlab.registry import Registry

#: ``factory(model, **options) -> attack``; its signature lists the options and defaults.
AttackFactory = Callable[..., object]

ATTACKS: Registry[AttackFactory] = Registry("attack")
TORCHATTACKS_PREFIX = "torchattacks."
_MODEL = ("model",)


def register_attack(name: str) -> Callable[[AttackFactory], AttackFactory]:
    """Decorator that makes ``factory(model, **options)`` available as ``build_attack(name,
    model, **options)``; the factory's keyword parameters are the attack's options."""
    return ATTACKS.register(name)


def list_attacks() -> list[str]:
    """Names accepted by `build_attack`: native ones first, then torchattacks classes."""
    return ATTACKS.names()


def _key(name: str) -> str:
    """``torchattacks.CW`` finds ``CW``; a shadowed port keeps its prefix (``torchattacks.PGD``)."""
    name = str(name)
    if name not in ATTACKS and name.lower().startswith(TORCHATTACKS_PREFIX):
        return name[len(TORCHATTACKS_PREFIX) :]
    return name


def attack_options(name: str) -> dict[str, object]:
    """Keyword options of an attack and their defaults (``model`` excluded)."""
    return ATTACKS.options(_key(name), skip=_MODEL)


def takes_eps(name: str) -> bool:
    """Whether the attack has an ``eps`` budget (CW and DeepFool minimise the norm instead)."""
    return "eps" in attack_options(name)


def attack_norm(name: str, kwargs: Mapping[str, object] | None = None) -> str:
    """The norm an attack's eps (or reported perturbation) is measured in."""
    kwargs = kwargs or {}
    key = str(name).lower().removeprefix(TORCHATTACKS_PREFIX)
    if key == "pgd_l2" or key in L2_ATTACKS:
        return "L2"
    return str(kwargs.get("norm", attack_options(name).get("norm", "Linf")))


def build_attack(name: str, model: nn.Module, **kwargs: object) -> object:
    """Build an attack by name: ``fgsm``, ``pgd``, ``pgd_l2``, ``apgd``, ``apgd_t`` (APGD-T,
    targeted DLR), ``square`` or any torchattacks class (``torchattacks.APGD`` /
    ``torchattacks.Square`` for its ports); see `list_attacks`.

    Every returned attack takes ``(images, labels)`` in [0, 1], returns adversarial images on
    the model's device, offers ``run`` (an `AttackResult`) and restores the model. An
    unknown name or option is one `ConfigError` line naming the valid ones.
    """
    key = _key(name)
    factory = ATTACKS.get(key)
    ATTACKS.check_options(key, kwargs, skip=_MODEL)
    return factory(model, **kwargs)


def _with_signature(
    factory: AttackFactory,
    name: str,
    signature_of: Callable[..., object],
    drop: Sequence[str] = (),
    defaults: Mapping[str, object] | None = None,
    extra: Sequence[inspect.Parameter] = (),
) -> AttackFactory:
    """Give ``factory`` the options of ``signature_of`` (less ``drop``, with ``defaults``,
    plus ``extra``) so that listing and checking options needs no special case."""
    defaults = defaults or {}
    params = [
        p.replace(default=defaults.get(p.name, p.default))
        for p in inspect.signature(signature_of).parameters.values()
        if p.name not in drop and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    factory.__signature__ = inspect.Signature([*params, *extra])  # type: ignore[attr-defined]
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = inspect.getdoc(signature_of)
    return factory


def _variant(cls: type, name: str, fixed: dict, defaults: dict) -> AttackFactory:
    """A native attack with some options fixed (``pgd_l2``: norm L2) and others re-defaulted."""

    def factory(model: nn.Module, **kwargs: object) -> object:
        return cls(model, **{**defaults, **kwargs, **fixed})

    return _with_signature(factory, name, cls, drop=tuple(fixed), defaults=defaults)


def _adapted_factory(cls: type, name: str) -> AttackFactory:
    """An adapted torchattacks class (`robustlab.attacks.adapter.adapt`) with a
    ``targeted`` option (labels given to the attack are then the targets, as
    ``set_mode_targeted_by_label``)."""

    def factory(model: nn.Module, targeted: bool = False, **kwargs: object) -> object:
        try:
            attack = cls(model, **kwargs)
            if targeted:
                attack.set_mode_targeted_by_label(quiet=True)
        except (TypeError, ValueError, AssertionError) as err:
            raise ConfigError(f"attack {name!r} rejected its options {kwargs}: {err}") from err
        attack.name = name
        return attack

    targeted = inspect.Parameter("targeted", inspect.Parameter.KEYWORD_ONLY, default=False)
    return _with_signature(factory, name, cls, extra=(targeted,))


def multi_attack(model: nn.Module, attacks: Sequence[object], verbose: bool = False) -> object:
    """`MultiAttack` by name: ``attacks`` must all be built on ``model``."""
    if any(getattr(attack, "model", None) is not model for attack in attacks):
        raise ConfigError("MultiAttack: build every attack in `attacks` on the model given here")
    return MultiAttack(attacks, verbose=verbose)


NATIVE_BY_TORCHATTACKS_NAME = {"PGDL2": PGDL2, "APGDT": APGDT, "MultiAttack": multi_attack}


def _register_torchattacks() -> None:
    """Every name of ``torchattacks.__all__`` after the native ones: ``robustlab.attacks``'
    class of that name; the port of a native class as ``torchattacks.<Name>``."""
    for name in torchattacks.__all__:
        if name in ported.NATIVE and name != "MultiAttack":
            port = TORCHATTACKS_PREFIX + name
            register_attack(port)(_adapted_factory(adapt(getattr(torchattacks, name)), port))
        if name in ATTACKS:  # a native attack took the plain name (fgsm, pgd, apgd, square)
            continue
        if name in NATIVE_BY_TORCHATTACKS_NAME:
            register_attack(name)(NATIVE_BY_TORCHATTACKS_NAME[name])
        else:
            register_attack(name)(_adapted_factory(getattr(ported, name), name))


register_attack("fgsm")(FGSM)
register_attack("pgd")(PGD)
register_attack("pgd_l2")(_variant(PGD, "pgd_l2", {"norm": "L2"}, {"eps": 1.0, "alpha": 0.2}))
register_attack("apgd")(APGD)
register_attack("apgd_t")(_variant(APGD, "apgd_t", {"targeted": True}, {"loss": "dlr"}))
register_attack("square")(Square)
_register_torchattacks()


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
    if step_size is not None and "alpha" in kwargs:
        raise ConfigError(
            f"attack {spec.name!r} got both alpha={kwargs['alpha']!r} and step_size={step_size!r} "
            "(alpha = step_size * eps): give one of them"
        )

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
    "ATTACKS",
    "AttackFactory",
    "AttackSpec",
    "attack_factory",
    "attack_norm",
    "attack_options",
    "build_attack",
    "list_attacks",
    "register_attack",
    "takes_eps",
]
