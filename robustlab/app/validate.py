"""Checks run right after composition: keys against each node's schema, ranges and choices
from the schema's field metadata, the combinations of groups; every job of a sweep."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, RangeSweep
from omegaconf import DictConfig, OmegaConf

from robustlab.app.external_model import check_external_options, is_external
from robustlab.app.hydra_internals import BasicSweeper
from robustlab.app.option_schemas import options_with_key
from robustlab.data import needs_root
from robustlab.errors import ConfigError
from robustlab.explain import list_attributions
from robustlab.models import model_options
from robustlab.registry import did_you_mean
from robustlab.training.objectives.registry import check_value

# the node Hydra adds to a config composed for a run or a sweep (not part of the schema)
HYDRA_NODE = "hydra"
# an app's own check of one job: its config (no hydra node) and its command-line overrides
JobCheck = Callable[[DictConfig, list[str]], None]


def job_config(cfg: DictConfig) -> DictConfig:
    """The config a job sees: ``cfg`` without the ``hydra`` node (whose run directory
    interpolates values only Hydra resolves)."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != HYDRA_NODE])


def unknown_key_message(path: str, key: str, valid: list[str], option: str | None = None) -> str:
    """``unknown key defense.beta (defense=none): did you mean ...? (valid keys: name)``."""
    full = f"{path}.{key}" if path else key
    chosen = f" ({path}={option})" if path and option else ""
    hint = did_you_mean(key, valid, show=lambda name: f"{path}.{name}" if path else name)
    owners = [f"{path}={name}" for name in options_with_key(path, key)] if option else []
    owned = f"; {key} is a key of {', '.join(owners)}" if owners else ""
    return f"unknown key {full}{chosen}: {hint}(valid keys: {', '.join(valid) or 'none'}{owned})"


def check_node(path: str, node: DictConfig) -> None:
    """Check ``node`` against the schema it was composed with, recursively: a key the schema
    lacks (force-added with ``+key=value``), a value out of its range or choices."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):  # a plain mapping: check its typed values
        for key in node:
            value = node[key]
            if isinstance(value, DictConfig):
                check_node(f"{path}.{key}", value)
        return
    fields = {spec.name: spec for spec in dataclasses.fields(schema)}
    for key in node:
        if key not in fields and not (path == "" and key == HYDRA_NODE):
            option = node.get("name") if "name" in fields else None
            raise ConfigError(unknown_key_message(path, str(key), list(fields), option))
    for name, spec in fields.items():
        if name not in node or OmegaConf.is_missing(node, name):
            continue
        value = node[name]
        child = f"{path}.{name}" if path else name
        if isinstance(value, DictConfig):
            check_node(child, value)
        else:
            check_value(child, value, spec.metadata)


def _check_model_options(model: DictConfig) -> None:
    if is_external(model):
        check_external_options(model)
        return
    given = {key for key, value in model.items() if key != "_target_" and value is not None}
    unknown = sorted(given - {"name"} - set(model_options(model.name)))
    if unknown:
        valid = ", ".join(model_options(model.name)) or "(none)"
        raise ConfigError(
            f"model {model.name} has no option {', '.join(unknown)}: its options are {valid}"
        )


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for the first out-of-range value or invalid combination."""
    check_node("", cfg)
    _check_model_options(cfg.model)
    for key in list(cfg.detector.attacks) + list(cfg.detector.unseen) + [cfg.detector.fit_on]:
        if key is not None and cfg.detector.name != "none" and key not in cfg.eval.attacks:
            raise ConfigError(
                f"detector attack {key!r} is not one of eval.attacks "
                f"({', '.join(cfg.eval.attacks)}): "
                f"add it with +attack@eval.attacks.{key}={key}"
            )
    unknown = sorted(set(cfg.explain.get("methods", [])) - set(list_attributions()))
    if unknown:
        raise ConfigError(
            f"explain.methods has unknown method(s) {', '.join(unknown)}: "
            f"choose from {', '.join(list_attributions())}"
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


def validate_sweep(config: DictConfig, *, check_job: JobCheck | None = None) -> None:
    """Compose and check every job of a multirun before any starts (raises ConfigError or the
    composition's error, with a note naming the job); ``check_job``: the app's own check.

    The sweep's jobs are the basic sweeper's combinations of ``hydra.sweeper.params`` and the
    command-line overrides; each is composed as Hydra will compose it and range-checked, so a
    bad value in a 10-job sweep is one error at start-up instead of ten failed jobs.
    """
    loader = GlobalHydra.instance().config_loader()
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=loader)
    given = params + list(config.hydra.overrides.task)
    overrides = parser.parse_overrides([_bounds_only(parser, text) for text in given])
    for batch in BasicSweeper.split_arguments(overrides, None):
        for job_overrides in batch:
            try:
                job = loader.load_sweep_config(config, list(job_overrides))
                validate_config(job)
                if check_job is not None:
                    check_job(job_config(job), list(job_overrides))
            except Exception as err:
                err.add_note(f"sweep job {' '.join(job_overrides)}")
                raise


def _bounds_only(parser: OverridesParser, text: str) -> str:
    """A search sweeper's ``interval(a, b)`` or ``range(a, b)`` as its two ends (``a,b``): the
    basic sweeper cannot list them, and checking the ends checks the range of every value."""
    override = parser.parse_overrides([text])[0]
    value = override.value()
    if isinstance(value, IntervalSweep):
        ends = [value.start, value.end]
    elif isinstance(value, RangeSweep):
        values = list(override.sweep_string_iterator())
        ends = [values[0], values[-1]] if values else []
    else:
        return text
    return f"{override.get_key_element()}={','.join(dict.fromkeys(str(end) for end in ends))}"
