"""``model=external``: evaluate a model robustlab did not train.

The model comes from one of two places:

- ``model.factory=pkg.module:function``, called with ``model.kwargs`` (``+model.kwargs.width=8``),
  then ``model.weights=PATH`` loaded into it exactly (safetensors, or a ``.pt``/``.pth`` state
  dict read with ``weights_only=True``; a ``state_dict`` key and a ``module.`` prefix are
  unwrapped);
- ``model.file=PATH``: a whole saved model, ``torch.export`` (``.pt2``, exported with a dynamic
  batch dimension) or TorchScript (any other suffix).

It must map [0, 1] images of the data set (``data=...``) to logits; ``model.mean``/``model.std``
wrap it in robustlab's normalisation when it expects normalised inputs (leave them null when it
normalises inside). ``model.split`` picks the split it is evaluated on (``test`` by default).
This module is the only place that imports a user's code by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robustlab.app.builders import DataBundle
from robustlab.data import DatasetInfo
from robustlab.errors import CheckpointError, ConfigError
from robustlab.loading import load_state_dict_into, read_state_dict
from robustlab.models.layers.normalize import Normalize

EXTERNAL = "external"
# the keys of model=external; the other model keys (width, depth, ...) belong to robustlab's
SOURCE_KEYS = ("factory", "kwargs", "weights", "file")
EXTERNAL_KEYS = (*SOURCE_KEYS, "mean", "std", "split")


def is_external(model: DictConfig) -> bool:
    """Whether a ``model`` node is ``model=external``."""
    return model.get("name") == EXTERNAL


def check_external_options(model: DictConfig) -> None:
    """ConfigError (one line) unless the node names exactly one source and nothing else."""
    given = {k for k, v in model.items() if k not in ("_target_", "name") and v is not None}
    foreign = sorted(given - set(EXTERNAL_KEYS))
    if foreign:
        raise ConfigError(
            f"model=external has no option {', '.join(foreign)}: pass the factory's arguments "
            f"as +model.kwargs.{foreign[0]}=VALUE (its keys: {', '.join(EXTERNAL_KEYS)})"
        )
    if (model.factory is None) == (model.file is None):
        raise ConfigError(
            "model=external needs one of model.factory=pkg.module:function (with "
            "model.weights=PATH) or model.file=PATH (a torch.export .pt2 or TorchScript file)"
        )
    if model.file is not None and (model.weights is not None or model.kwargs):
        raise ConfigError(
            "model.file holds the whole model: drop model.weights and model.kwargs, or use "
            "model.factory instead of model.file"
        )


def import_factory(path: str) -> Callable[..., Any]:
    """The callable ``pkg.module:function`` names (``function`` may be ``Class.method``)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"model.factory={path!r} is not pkg.module:function, e.g. mypkg.models:resnet"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"model.factory: cannot import {module_name!r} ({err}): install it or add its "
            "directory to PYTHONPATH"
        ) from err
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"model.factory: {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"model.factory: {path} is not callable")
    return target


def factory_model(model: DictConfig) -> nn.Module:
    """The factory's model with ``model.kwargs`` and, when given, ``model.weights`` loaded."""
    factory = import_factory(model.factory)
    kwargs = OmegaConf.to_container(model.kwargs, resolve=True) if model.kwargs else {}
    try:
        built = factory(**kwargs)
    except TypeError as err:
        raise ConfigError(f"model.factory {model.factory} refused model.kwargs: {err}") from err
    if not isinstance(built, nn.Module):
        raise ConfigError(
            f"model.factory {model.factory} returned {type(built).__name__}, not an nn.Module"
        )
    if model.weights is not None:
        load_state_dict_into(built, read_state_dict(model.weights), str(model.weights))
    return built


class ExportedModel(nn.Module):
    """A ``torch.export`` program as a module. Its graph was fixed at export (train or eval
    behaviour included) and refuses ``train()``/``eval()``, so these set the flag only."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def train(self, mode: bool = True) -> ExportedModel:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)


def file_model(path: str | Path) -> nn.Module:
    """A saved whole model: ``torch.export`` (``.pt2``) or TorchScript (any other suffix)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no model file at {path}: check model.file")
    try:
        if path.suffix == ".pt2":
            return ExportedModel(torch.export.load(path).module())
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # both loaders raise their own error types for a foreign file
        kind = "torch.export (.pt2)" if path.suffix == ".pt2" else "TorchScript"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot load {path} as a {kind} file ({reason})") from err


def build_external_model(model: DictConfig, info: DatasetInfo, device: torch.device) -> nn.Module:
    """The external model in eval mode on ``device``, wrapped in ``model.mean``/``model.std``
    normalisation when given, checked on one image of the data set's shape."""
    check_external_options(model)
    built = factory_model(model) if model.factory is not None else file_model(model.file)
    if model.mean is not None or model.std is not None:
        mean = None if model.mean is None else list(model.mean)
        std = None if model.std is None else list(model.std)
        built = nn.Sequential(Normalize(info.in_channels, mean, std), built)
    built = built.to(device).eval()
    _probe(built, info, device)
    return built


@torch.no_grad()
def _probe(model: nn.Module, info: DatasetInfo, device: torch.device) -> None:
    """One forward on a blank image of data=<name>: a shape mismatch is one line here, not a
    traceback in the middle of an attack."""
    shape = (2, info.in_channels, info.image_size, info.image_size)
    try:
        out = model(torch.zeros(shape, device=device))
    except Exception as err:  # whatever the user's forward raises
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"the external model fails on a {shape} batch of data={info.name} ({reason}): it "
            "must take [0, 1] images of the data set (and a batch of any size)"
        ) from err
    if not torch.is_tensor(out) or out.shape[:1] != (2,) or out.ndim != 2:
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ConfigError(f"the external model must return logits (N, classes), got {got}")
    if out.shape[1] < info.num_classes:
        raise ConfigError(
            f"the external model returns {out.shape[1]} logits but data={info.name} has "
            f"{info.num_classes} classes: check model.kwargs or data"
        )


def evaluation_split(model: DictConfig, bundle: DataBundle) -> DataBundle:
    """``bundle`` with the split ``model.split`` names (test, val or train) in the place of the
    test split that the stages evaluate."""
    split = model.get("split") or "test"
    return bundle if split == "test" else replace(bundle, test=getattr(bundle, split))


def refuse_training(model: DictConfig) -> None:
    """One line under ``robustlab-train`` for ``model=external``, saying where it belongs."""
    if is_external(model):
        raise ConfigError(
            "model=external evaluates a model robustlab did not train: run robustlab-eval "
            "model=external ... (robustlab-train trains robustlab's own models)"
        )


__all__ = [
    "EXTERNAL",
    "ExportedModel",
    "build_external_model",
    "check_external_options",
    "evaluation_split",
    "file_model",
    "import_factory",
    "is_external",
    "refuse_training",
]
