"""Load a trained model from any directory ``robustlab-train`` wrote, without Hydra or W&B.

A checkpoint directory holds ``model.safetensors`` (the weights, no pickle) and ``model.json``
(the plain config it was trained with). The model is rebuilt through the model registry from
that config: the same class, the same options, normalization inside. The run directory of a
job (its ``results.json`` names the checkpoint) and the path of ``model.safetensors`` itself
lead to the same checkpoint.

[`read_state_dict`][robustlab.loading.read_state_dict] and
[`load_state_dict_into`][robustlab.loading.load_state_dict_into] load the weights of a model
robustlab did not train (safetensors, or a state dict in a ``.pt``/``.pth`` file read with
``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.data import dataset_info
from robustlab.devices import resolve_device
from robustlab.errors import CheckpointError, RobustlabError
from robustlab.models import create_model
from robustlab.training.checkpoint import (
    WEIGHTS_FILE,
    WEIGHTS_META,
    finished_weights,
    load_weights,
    read_json,
)

MODEL_TARGET = "robustlab.models.create_model"
RESULTS_FILE = "results.json"  # the results contract's file name (robustlab.tracking.results)
SHOWN_KEYS = 3  # parameter names quoted in a mismatch message


def checkpoint_directory(path: str | Path) -> Path:
    """The checkpoint directory ``path`` leads to: itself, the directory of its
    ``model.safetensors``/``model.json``, or the checkpoint a job's ``results.json`` (or the run
    directory holding it) names."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS_FILE, WEIGHTS_META):
        return path.parent
    results = path if path.is_file() and path.name == RESULTS_FILE else path / RESULTS_FILE
    if path.is_file() and path.name != RESULTS_FILE:
        raise CheckpointError(
            f"{path} is a file: point to a checkpoint directory (with {WEIGHTS_FILE}), its "
            f"{WEIGHTS_FILE}, or a run directory with {RESULTS_FILE}"
        )
    if not results.is_file() or finished_weights(results.parent) is not None:
        return path
    named = read_json(results).get("checkpoint") if results.is_file() else None
    if not isinstance(named, str):
        raise CheckpointError(
            f"{results} names no checkpoint (the job failed or did not train): point to a "
            "finished run or to a checkpoint directory"
        )
    run = results.parent.resolve()
    # a relative checkpoint path is relative to where the job ran: here, the run or above it
    candidates = [Path(named), *(base / named for base in (run, *run.parents))]
    return next((c for c in candidates if c.is_dir()), Path(named))


def checkpoint_config(directory: str | Path) -> dict[str, Any]:
    """The plain config stored beside a finished checkpoint's weights.

    Raises ``CheckpointError`` for a missing, unfinished or foreign directory.
    """
    directory = checkpoint_directory(directory)
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
            name,
            info.num_classes,
            info.in_channels,
            mean=list(info.mean),
            std=list(info.std),
            **options,
        )
    except RobustlabError as err:
        raise CheckpointError(f"cannot rebuild the checkpoint's model: {err}") from err


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model in ``directory``: eval mode, weights loaded, normalization inside.

    Args:
        directory: A checkpoint directory, its ``model.safetensors``, or a run directory whose
            results.json names the checkpoint.
        device: ``"cpu"`` (default), ``"cuda"``, ``"auto"``...

    Returns:
        The model, in eval mode, on ``device``.

    Raises:
        CheckpointError: A missing, unfinished, corrupt or foreign directory, saying which.
    """
    directory = checkpoint_directory(directory)
    config = checkpoint_config(directory)
    model = build_checkpoint_model(config).to(resolve_device(device))
    load_weights(directory, model)
    return model.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: safetensors, or a ``.pt``/``.pth``/``.bin`` state dict
    read with ``weights_only=True`` (never unpickling code), unwrapped from a ``state_dict`` (or
    ``model``) key and stripped of DataParallel's ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}: check model.weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # each format raises its own error types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot read weights from {path} ({reason}): give a safetensors file or a state "
            "dict saved with torch.save(model.state_dict(), path)"
        ) from err
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(
            f"{path} holds no state dict (name -> tensor): save one with "
            "torch.save(model.state_dict(), path)"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` exactly: every key present, none left over, every shape
    equal; anything else is one ``CheckpointError`` naming the first keys that differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} {', '.join(keys[:SHOWN_KEYS])}" + (" ..." if len(keys) > SHOWN_KEYS else "")
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
            if keys
        ]
        raise CheckpointError(
            f"the weights in {source} do not match the model ({'; '.join(parts)}): build the "
            "model with the options it was trained with (model.kwargs)"
        )
    model.load_state_dict(state)
