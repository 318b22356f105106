"""One schema per config option: a group's yaml names its own schema first in its defaults list
(``defaults: [pgd_at_schema, _self_]``), so a key exists only under the options that use it.

Defense schemas are the registered defenses' option dataclasses (``robustlab.training``) plus
their ``name``: a new defense brings its schema with its registration. The other groups' option
schemas are the dataclasses below, stored under ``<option>_schema`` in their group. The
detector options share one schema (``DetectorConfig``): their keys are the same.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any  # noqa: UP035 (OmegaConf needs typing generics)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from robustlab.certify import certify_model
from robustlab.detection import DEFAULT_NOISE_GRID, DetectionProtocol, list_detectors
from robustlab.explain import explain_robustness, inversion_study
from robustlab.training import list_defenses
from robustlab.training.objectives import defense_options


def lib_default(function: Callable, name: str) -> Any:
    """The library's default of ``function``'s parameter ``name``: the one source of it."""
    return inspect.signature(function).parameters[name].default


def bounded(default: Any, low: float | None = None, high: float | None = None, **kw: Any) -> Any:
    """A field whose values must lie in ``[low, high]`` (checked by ``validate_config``)."""
    return field(default=default, metadata={"range": (low, high), **kw})


def one_of(default: Any, *choices: Any) -> Any:
    """A field whose value must be one of ``choices``."""
    return field(default=default, metadata={"choices": choices})


def defense_schema(name: str) -> type:
    """The schema of ``defense=<name>``: the registered options and the defense's name."""
    options = defense_options(name)
    return make_dataclass(
        f"{options.__name__}Config",
        [("name", str, field(default=name, metadata={"choices": (name,)}))],
        bases=(options,),
    )


@dataclass
class AttackConfig:
    """Any attack of the catalogue: its name, its own eps grid (null: ``eval.eps``), options."""

    name: str = MISSING
    eps: list[float] | None = field(default=None, metadata={"range": (0.0, None)})
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PGDL2AttackConfig(AttackConfig):
    """``pgd_l2``: the native PGD in the L2 ball; its settings are keys of their own."""

    steps: int | None = bounded(None, 1)
    step_size: float | None = bounded(None, 0.0, exclusive_low=True)  # alpha = step_size * eps
    restarts: int = bounded(1, 1)
    loss: str = one_of("ce", "ce", "margin")
    early_stop: bool = True


@dataclass
class PGDAttackConfig(PGDL2AttackConfig):
    """``pgd``: the native PGD, in the ball of ``norm`` (None: Linf)."""

    norm: str | None = one_of(None, "Linf", "L2", "L1")


@dataclass
class ExternalModelConfig:
    """``model=external`` (``robustlab.app.external_model``): keys of the model node, null
    unless model=external."""

    factory: str | None = None  # pkg.module:function, called with kwargs
    kwargs: dict[str, Any] | None = None
    weights: str | None = None  # safetensors, or a .pt/.pth state dict
    file: str | None = None  # instead of factory: a torch.export .pt2 or TorchScript file
    mean: list[float] | None = None  # normalisation wrapped around the model (null: none)
    std: list[float] | None = field(default=None, metadata={"range": (0.0, None)})
    split: str | None = one_of(None, "test", "val", "train")  # evaluated split (null: test)


@dataclass
class OptionConfig:
    """An option that only names itself (``detector=none``, ``explain=none``, ...)."""

    name: str = MISSING


@dataclass
class DetectorConfig:
    """Every detector option (their protocols are the same; ``noise_grid``: Mahalanobis's input
    pre-processing), ``none`` included: one schema for the group."""

    name: str = one_of("none", "none", *list_detectors(), "all")
    attacks: list[str] = field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = field(default_factory=lambda: [0.1], metadata={"range": (0.0, None)})
    fit_on: str | None = "fgsm"
    unseen: list[str] = field(default_factory=list)
    adaptive: bool = True
    adaptive_weight: float = bounded(DetectionProtocol.adaptive_weight, 0.0)
    noise_grid: list[float] = field(default_factory=lambda: list(DEFAULT_NOISE_GRID))
    max_examples: int | None = bounded(400, 1)


@dataclass
class ExplainConfig(OptionConfig):
    eps: float | None = bounded(None, 0.0, exclusive_low=True)  # null: the middle eval eps
    methods: list[str] = field(
        default_factory=lambda: list(lib_default(explain_robustness, "methods"))
    )
    max_examples: int = bounded(lib_default(explain_robustness, "max_examples"), 1)
    k: int | None = bounded(lib_default(explain_robustness, "k"), 1)  # null: 1/8 of pixels
    faithfulness_steps: int = bounded(lib_default(explain_robustness, "faithfulness_steps"), 2)
    sanity: bool = lib_default(explain_robustness, "sanity")
    # feature inversion of every stage (robustlab.explain.inversion_study), off by default: the
    # first inversion_examples test images, the same for every model of a sweep
    inversion: bool = False
    inversion_examples: int = bounded(8, 1)
    inversion_regularizer: str = one_of(
        lib_default(inversion_study, "regularizer"), "tv", "l2", "none"
    )
    inversion_weight: float = bounded(lib_default(inversion_study, "weight"), 0.0)
    inversion_steps: int = bounded(lib_default(inversion_study, "steps"), 1)
    inversion_lr: float = bounded(lib_default(inversion_study, "lr"), 0.0, exclusive_low=True)


@dataclass
class CertifyConfig(OptionConfig):
    sigma: float | None = bounded(None, 0.0, exclusive_low=True)  # null: the training noise
    n0: int = bounded(lib_default(certify_model, "n0"), 1)
    n: int = bounded(lib_default(certify_model, "n"), 1)
    alpha: float = bounded(lib_default(certify_model, "alpha"), 0.0, 1.0, exclusive_low=True)
    radii: list[float] = field(
        default_factory=lambda: list(lib_default(certify_model, "radii")),
        metadata={"range": (0.0, None)},
    )
    batch_size: int = bounded(lib_default(certify_model, "batch_size"), 1)
    lipschitz: bool = lib_default(certify_model, "lipschitz")
    min_norm: list[str] = field(
        default_factory=lambda: list(lib_default(certify_model, "min_norm"))
    )
    min_norm_steps: int = bounded(lib_default(certify_model, "min_norm_steps"), 1)
    max_examples: int | None = bounded(None, 1)


@dataclass
class LoggerConfig(OptionConfig):
    """Both logger options share these keys: an experiment names its W&B group once, and
    ``logger=none`` on that experiment still composes (the run is then disabled)."""

    mode: str = one_of("offline", "offline", "online", "disabled")
    project: str = "robustlab"
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    log_checkpoints: bool = False


# group -> option -> schema (the defenses come from their registry)
OPTION_SCHEMAS: dict[str, dict[str, type]] = {
    "attack": {"attack": AttackConfig, "pgd": PGDAttackConfig, "pgd_l2": PGDL2AttackConfig},
    "explain": {"none": OptionConfig, "default": ExplainConfig},
    "certify": {"none": OptionConfig, "default": CertifyConfig},
    "logger": {"none": LoggerConfig, "wandb": LoggerConfig},
}


def register_option_schemas() -> None:
    """Store every option's schema as ``<group>/<option>_schema`` in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    for name in list_defenses():
        store.store(group="defense", name=f"{name}_schema", node=defense_schema(name))
    for group, schemas in OPTION_SCHEMAS.items():
        for option, schema in schemas.items():
            store.store(group=group, name=f"{option}_schema", node=schema)


def options_with_key(group: str, key: str) -> list[str]:
    """The options of ``group`` whose schema has ``key`` (``beta``: ``trades``)."""
    schemas = OPTION_SCHEMAS.get(group, {})
    if group == "defense":
        schemas = {name: defense_options(name) for name in list_defenses()}
    return [
        option
        for option, schema in schemas.items()
        if key in {spec.name for spec in dataclasses.fields(schema)}
    ]
