"""Range and choice checks from the schema's field metadata, run right after composition."""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig

from robustlab.app.schema import AttackConfig, Config
from robustlab.data import needs_root
from robustlab.errors import ConfigError
from robustlab.explain import list_methods
from robustlab.models import model_options


def _check_value(path: str, value: Any, meta: dict[str, Any]) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"{path}={value!r} is not valid: choose one of {', '.join(map(str, choices))}"
        )
    low, high = meta.get("range", (None, None))
    values = list(value) if isinstance(value, (list, ListConfig)) else [value]
    for item in values:
        if low is not None and (item < low or (meta.get("exclusive_low") and item == low)):
            bound = ">" if meta.get("exclusive_low") else ">="
            raise ConfigError(f"{path}={item!r} is out of range: it must be {bound} {low}")
        if high is not None and item > high:
            raise ConfigError(f"{path}={item!r} is out of range: it must be <= {high}")


def _check_node(path: str, node: DictConfig, schema: type) -> None:
    for spec in dataclasses.fields(schema):
        if spec.name not in node:
            continue
        value = node[spec.name]
        child = f"{path}.{spec.name}" if path else spec.name
        if isinstance(value, DictConfig) and spec.name != "options":
            nested = _nested_schema(schema, spec.name)
            if nested is not None:
                _check_node(child, value, nested)
                continue
        _check_value(child, value, dict(spec.metadata))


def _nested_schema(schema: type, name: str) -> type | None:
    default = next(f for f in dataclasses.fields(schema) if f.name == name).default_factory
    if default is dataclasses.MISSING:
        return None
    instance = default()
    return type(instance) if dataclasses.is_dataclass(instance) else None


def _check_model_options(model: DictConfig) -> None:
    given = {key for key, value in model.items() if key != "_target_" and value is not None}
    unknown = sorted(given - {"name"} - set(model_options(model.name)))
    if unknown:
        valid = ", ".join(model_options(model.name)) or "(none)"
        raise ConfigError(
            f"model {model.name} has no option {', '.join(unknown)}: its options are {valid}"
        )


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for the first out-of-range value or invalid combination."""
    _check_node("", cfg, Config)
    _check_model_options(cfg.model)
    for key, attack in cfg.eval.attacks.items():
        _check_node(f"eval.attacks.{key}", attack, AttackConfig)
    for key in list(cfg.detector.attacks) + list(cfg.detector.unseen) + [cfg.detector.fit_on]:
        if key is not None and cfg.detector.name != "none" and key not in cfg.eval.attacks:
            raise ConfigError(
                f"detector attack {key!r} is not one of eval.attacks "
                f"({', '.join(cfg.eval.attacks)}): "
                f"add it with +attack@eval.attacks.{key}={key}"
            )
    unknown = sorted(set(cfg.explain.methods) - set(list_methods()))
    if unknown:
        raise ConfigError(
            f"explain.methods has unknown method(s) {', '.join(unknown)}: "
            f"choose from {', '.join(list_methods())}"
        )
    if cfg.detector.name == "kd_bu" and not cfg.model.get("dropout"):
        raise ConfigError(
            "detector=kd_bu needs Monte-Carlo dropout in the model's head: add model.dropout=0.5 "
            "(or use detector=mahalanobis, lid or all)"
        )
    if needs_root(cfg.data.name) and not cfg.data.root:
        raise ConfigError(
            f"data={cfg.data.name} needs data.root=DIR pointing at the data set files"
        )


def validate_sweep(config: DictConfig) -> None:
    """Compose and check every job of a multirun before any starts (raises ConfigError).

    The sweep's jobs are the basic sweeper's combinations of ``hydra.sweeper.params`` and the
    command-line overrides; each is composed as Hydra will compose it and range-checked, so a
    bad value in a 10-job sweep is one error at start-up instead of ten failed jobs.
    """
    loader = GlobalHydra.instance().config_loader()
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=loader)
    overrides = parser.parse_overrides(params + list(config.hydra.overrides.task))
    for batch in BasicSweeper.split_arguments(overrides, None):
        for job_overrides in batch:
            job = loader.load_sweep_config(config, list(job_overrides))
            try:
                validate_config(job)
            except ConfigError as err:
                raise ConfigError(f"{err} (sweep job {' '.join(job_overrides)})") from err
