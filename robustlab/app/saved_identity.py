"""What a saved model's job (``robustlab-eval``, ``robustlab-detect``) takes from its checkpoint.

The checkpoint decides the model, the defense and the seed: they are what it was trained with,
so a command line that says otherwise (``model=se_resnet20`` for a ResNet-20 checkpoint) is
refused in one line instead of being silently replaced. The data set may change, to one of
the same shape (a model trained on MNIST evaluated on Fashion-MNIST): results.json then records
both. Only what the command line says counts; an experiment's or the defaults' choices never
contradict a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from robustlab.data import DatasetInfo, dataset_info
from robustlab.errors import ConfigError

# the groups and keys a checkpoint decides; a group's choice is compared by its ``name``
DECIDED_GROUPS = ("model", "defense")
DECIDED_KEYS = ("seed",)
DATA = "data"


def given_keys(overrides: Sequence[str]) -> dict[str, Any]:
    """The keys (``model``, ``defense.beta``) the command line sets, with their values;
    deletions and options placed elsewhere (``+attack@eval.attacks.l2=pgd_l2``) excluded."""
    if not overrides:
        return {}
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {
        override.key_or_group: override.value()
        for override in parsed
        if not override.is_delete() and override.package is None
    }


def _decides(key: str) -> bool:
    root = key.split(".", 1)[0]
    return root in DECIDED_GROUPS or key in DECIDED_KEYS


def _compared(key: str) -> str:
    """The key whose value is compared: a group's ``name``, else the key itself."""
    return f"{key}.name" if key in DECIDED_GROUPS or key == DATA else key


def check_decided_keys(
    cfg: DictConfig, saved: dict[str, Any], overrides: Sequence[str], *, checkpoint: str
) -> None:
    """ConfigError (one line) when the command line sets a model, defense or seed other than
    the checkpoint's; a key the checkpoint does not record is left as given."""
    saved_cfg = OmegaConf.create(saved)
    for key in filter(_decides, given_keys(overrides)):
        compared = _compared(key)
        wanted = OmegaConf.select(cfg, compared, default=None)
        trained = OmegaConf.select(saved_cfg, compared, default=None)
        if compared.split(".", 1)[0] not in saved or wanted == trained:
            continue
        raise ConfigError(
            f"{key}={_shown(wanted)} contradicts the checkpoint {checkpoint}, trained with "
            f"{compared.removesuffix('.name')}={_shown(trained)}: drop {key}= (the checkpoint "
            "decides the model, defense and seed)"
        )


def _shown(value: Any) -> str:
    return "null" if value is None else str(value)


def evaluation_data(
    cfg: DictConfig, saved: dict[str, Any], overrides: Sequence[str]
) -> dict[str, Any]:
    """The data node a saved model's job runs on: the checkpoint's, with the keys the command
    line sets (``data.root``, ``data.batch_size``) and, for ``data=<other>``, that data set
    when its images and classes have the checkpoint's shape (else ConfigError)."""
    given = given_keys(overrides)
    chosen = OmegaConf.to_container(cfg.data, resolve=True)
    trained = {**chosen, **saved[DATA]}  # a key an older checkpoint lacks: the config's
    if chosen["name"] != trained["name"] and (DATA in given or f"{DATA}.name" in given):
        check_same_shape(trained["name"], chosen["name"])
        return chosen
    if chosen.get("root") is not None:  # where the files are on this machine
        trained["root"] = chosen["root"]
    for key in given:
        head, _, sub = key.partition(".")
        if head == DATA and sub and "." not in sub:
            trained[sub] = chosen[sub]
    return trained


def check_same_shape(trained: str, evaluated: str) -> None:
    """ConfigError unless data sets ``trained`` and ``evaluated`` share image shape and classes."""
    have, want = _shape(dataset_info(trained)), _shape(dataset_info(evaluated))
    if have != want:
        raise ConfigError(
            f"data={evaluated} does not fit the checkpoint, trained on {trained} ({have}; "
            f"{evaluated} has {want}): drop data= or choose a data set of the same shape"
        )


def _shape(info: DatasetInfo) -> str:
    size = info.image_size
    return f"{info.in_channels}x{size}x{size} images, {info.num_classes} classes"


def saved_job_config(
    cfg: DictConfig, saved: dict[str, Any], overrides: Sequence[str], *, checkpoint: str
) -> DictConfig:
    """``cfg`` with the checkpoint's model, defense and seed and the data it is evaluated on,
    after refusing a command line that contradicts the checkpoint."""
    check_decided_keys(cfg, saved, overrides, checkpoint=checkpoint)
    merged = OmegaConf.to_container(cfg, resolve=True)
    for key in (*DECIDED_GROUPS, *DECIDED_KEYS):
        if key in saved:
            merged[key] = saved[key]
    if DATA in saved:
        merged[DATA] = evaluation_data(cfg, saved, overrides)
    return OmegaConf.create(merged)
