"""Load a trained model from any directory ``robustlab-train`` wrote, without Hydra or W&B.

A checkpoint directory holds ``model.safetensors`` (the weights, no pickle) and ``model.json``
(the plain config it was trained with). The model is rebuilt through the model registry from
that config: the same class, the same options, normalisation inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.data import dataset_info
from robustlab.errors import CheckpointError, RobustlabError
from robustlab.models import create_model
from robustlab.runtime import resolve_device
from robustlab.training.checkpoint import WEIGHTS_META, finished_weights, load_weights, read_json

MODEL_TARGET = "robustlab.models.create_model"


def checkpoint_config(directory: str | Path) -> dict[str, Any]:
    """The plain config stored beside a finished checkpoint's weights.

    Raises :class:`CheckpointError` for a missing, unfinished or foreign directory.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if finished_weights(directory) is None:
        raise CheckpointError(
            f"{directory} holds no finished checkpoint (model.safetensors + model.json): "
            "point to a directory written by robustlab-train, or train it first"
        )
    meta = read_json(directory / WEIGHTS_META)
    config = meta.get("config") if isinstance(meta, dict) else None
    model = config.get("model") if isinstance(config, dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not isinstance(data, dict) or "name" not in data:
        raise CheckpointError(
            f"{directory / WEIGHTS_META} has no model/data config: it was not written by robustlab"
        )
    if model.get("_target_", MODEL_TARGET) != MODEL_TARGET or "name" not in model:
        raise CheckpointError(
            f"{directory / WEIGHTS_META} names a model robustlab does not build "
            f"({model.get('_target_')!r}): only robustlab.models checkpoints can be loaded"
        )
    return config


def build_checkpoint_model(config: dict[str, Any]) -> nn.Module:
    """An untrained model of the architecture a checkpoint config describes."""
    options = {k: v for k, v in config["model"].items() if k != "_target_" and v is not None}
    name = options.pop("name")
    try:
        info = dataset_info(config["data"]["name"])
        return create_model(
            name, info.num_classes, info.in_channels, list(info.mean), list(info.std), **options
        )
    except RobustlabError as err:
        raise CheckpointError(f"cannot rebuild the checkpoint's model: {err}") from err


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model in ``directory``: eval mode, weights loaded, normalisation inside.

    ``device``: ``"cpu"`` (default), ``"cuda"``, ``"auto"``... A bad or foreign directory is
    one :class:`robustlab.errors.CheckpointError` saying what is wrong.
    """
    config = checkpoint_config(directory)
    model = build_checkpoint_model(config).to(resolve_device(device))
    load_weights(Path(directory), model)
    return model.eval()
