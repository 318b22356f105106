"""Checkpoints: safetensors weights plus JSON metadata, written atomically, loaded without pickle.

Layout of a training directory::

    model.safetensors, model.json      final weights + resolved config and epoch (the result)
    state/epoch-0003.safetensors       model, optimizer, scheduler and RNG tensors of an epoch
    state/epoch-0003.json              the non-tensor part of that state
    state/last.json                    pointer to the newest complete epoch (flipped last)
    state/best.safetensors, best.json  the best weights by a monitored metric, if any

The pointer is replaced only after the files it names are complete, so a run killed at any
moment resumes from the last complete epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.errors import CheckpointError
from robustlab.fileio import write_json_atomic, write_tensors_atomic
from robustlab.training.state_io import flatten_state, load_tensors, unflatten_state

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_META = "model.json"


def save_weights(directory: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write the model's weights and a JSON of ``meta`` (config, epoch, metrics)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_tensors_atomic(directory / WEIGHTS_FILE, model.state_dict())
    write_json_atomic(directory / WEIGHTS_META, meta)
    return directory / WEIGHTS_FILE


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file, turning absence or corruption into a CheckpointError."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError(
            f"checkpoint metadata {path} is missing: train the model first"
        ) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint metadata {path} is corrupt ({err}): retrain it") from err


def load_weights(path: str | Path, model: nn.Module) -> None:
    """Load safetensors weights into ``model``; a mismatch is one clear error."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"no weights at {path}: point to a directory with {WEIGHTS_FILE}")
    try:
        tensors = load_tensors(path)
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a valid safetensors file ({err})") from err
    device = next(model.parameters()).device
    missing, unexpected = model.load_state_dict(
        {k: v.to(device) for k, v in tensors.items()}, strict=False
    )
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the model (missing {list(missing)[:3]}, unexpected "
            f"{list(unexpected)[:3]}): build the model with the checkpoint's config"
        )


def finished_weights(directory: str | Path) -> Path | None:
    """The final weights of a finished run in ``directory``, or None if it did not finish."""
    directory = Path(directory)
    if (directory / WEIGHTS_FILE).exists() and (directory / WEIGHTS_META).exists():
        return directory / WEIGHTS_FILE
    return None


class TrainingState:
    """Per-epoch resumable state of one training run in ``directory/state``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory) / "state"

    def save(self, epoch: int, modules: dict[str, Any], info: dict[str, Any]) -> None:
        """Store ``modules`` (objects with state_dict, or raw state) and JSON-able ``info``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        structure = {
            name: flatten_state(
                obj.state_dict() if hasattr(obj, "state_dict") else obj, tensors, name
            )
            for name, obj in modules.items()
        }
        stem = f"epoch-{epoch:04d}"
        write_tensors_atomic(self.directory / f"{stem}.safetensors", tensors)
        write_json_atomic(
            self.directory / f"{stem}.json", {"epoch": epoch, "state": structure, "info": info}
        )
        previous = self._pointer()
        write_json_atomic(self.directory / "last.json", {"epoch": epoch, "stem": stem})
        if previous and previous != stem:
            for suffix in (".safetensors", ".json"):
                (self.directory / f"{previous}{suffix}").unlink(missing_ok=True)

    def _pointer(self) -> str | None:
        pointer = self.directory / "last.json"
        return read_json(pointer)["stem"] if pointer.exists() else None

    def load(self) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
        """Return (epoch, states by name, info) of the last complete epoch, or None."""
        stem = self._pointer()
        if stem is None:
            return None
        record = read_json(self.directory / f"{stem}.json")
        tensors = load_tensors(self.directory / f"{stem}.safetensors")
        states = {name: unflatten_state(s, tensors) for name, s in record["state"].items()}
        return record["epoch"], states, record["info"]

    def save_best(self, model: nn.Module, epoch: int, metric: str, value: float) -> None:
        """Keep the weights of the best epoch by ``metric``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_tensors_atomic(self.directory / "best.safetensors", model.state_dict())
        write_json_atomic(
            self.directory / "best.json", {"epoch": epoch, "metric": metric, "value": value}
        )

    def best(self) -> dict[str, Any] | None:
        """Metadata of the best epoch, if one was kept."""
        path = self.directory / "best.json"
        return read_json(path) if path.exists() else None

    def restore_best(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model``."""
        load_weights(self.directory / "best.safetensors", model)
