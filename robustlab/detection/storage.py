"""Saving and loading a fitted Mahalanobis detector: safetensors + JSON, never pickle.

A detector directory holds ``detector.safetensors`` (per-layer class means, whitening and
precision; ensemble weights) and ``detector.json`` (settings, chosen noise, shapes). Both are
written atomically and carry the same random ``fit_id``, so a pair from two different saves
(a crash between the two renames) is refused instead of silently mixed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from robustlab.detection.features import frozen_eval, pooled_features
from robustlab.detection.gaussian import TiedGaussian
from robustlab.errors import CheckpointError
from robustlab.fileio import write_json_atomic, write_tensors_atomic
from robustlab.models.runtime import model_device

if TYPE_CHECKING:
    from robustlab.detection.mahalanobis import MahalanobisDetector

FORMAT_VERSION = 1
TENSOR_FILE = "detector.safetensors"
META_FILE = "detector.json"


def save_detector(detector: MahalanobisDetector, path: str | Path) -> None:
    """Write a fitted detector into the directory ``path``."""
    path = Path(path)
    fit_id = uuid.uuid4().hex
    tensors: dict[str, torch.Tensor] = {}
    for layer, gaussian in enumerate(detector.gaussians):
        tensors[f"layer{layer}.means"] = gaussian.means
        tensors[f"layer{layer}.whitening"] = gaussian.whitening
        tensors[f"layer{layer}.precision"] = gaussian.precision
    if detector.weights is not None:
        tensors["ensemble.weights"] = detector.weights
    meta = {
        "format_version": FORMAT_VERSION,
        "fit_id": fit_id,
        "num_layers": detector.num_layers,
        "input_shape": list(detector.input_shape),
        "noise_grid": list(detector.noise_grid),
        "shrinkage": detector.shrinkage,
        "layer_shrinkage": [g.shrinkage for g in detector.gaussians],
        "batch_size": detector.batch_size,
        "seed": detector.seed,
        "noise": detector.noise,
        "intercept": detector.intercept,
        "noise_aurocs": {repr(k): v for k, v in detector.noise_aurocs.items()},
        "ensemble": detector.weights is not None,
    }
    write_tensors_atomic(path / TENSOR_FILE, tensors, metadata={"fit_id": fit_id})
    # The JSON goes last: its presence marks a complete save.
    write_json_atomic(path / META_FILE, meta)


def load_detector(
    cls: type[MahalanobisDetector], path: str | Path, model: nn.Module
) -> MahalanobisDetector:
    """Read a detector directory written by ``save_detector`` and attach ``model``."""
    meta, tensors = _read(Path(path))
    detector = cls(meta["noise_grid"], meta["shrinkage"], meta["batch_size"], meta["seed"])
    device = model_device(model)
    try:
        detector.gaussians = [
            TiedGaussian(tensors[f"layer{i}.means"], tensors[f"layer{i}.whitening"], shrink).to(
                device
            )
            for i, shrink in enumerate(meta["layer_shrinkage"])
        ]
        if meta["ensemble"]:
            detector.weights = tensors["ensemble.weights"].float()
    except KeyError as err:
        raise CheckpointError(f"detector file in {path} lacks tensor {err}: save it again") from err
    detector.input_shape = tuple(meta["input_shape"])
    detector.noise = float(meta["noise"])
    detector.intercept = float(meta["intercept"])
    detector.noise_aurocs = {float(k): v for k, v in meta["noise_aurocs"].items()}
    _check_model(detector.gaussians, detector.input_shape, model, path)
    detector.model = model
    return detector


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    meta_path, tensor_path = path / META_FILE, path / TENSOR_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(
            f"no saved detector in {path}: expected {META_FILE} and {TENSOR_FILE} "
            "written by MahalanobisDetector.save"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with safe_open(str(tensor_path), framework="pt") as handle:
            fit_id = (handle.metadata() or {}).get("fit_id")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"cannot read the detector in {path} ({err}): save it again") from err
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"detector in {path} has format {meta.get('format_version')!r}, expected "
            f"{FORMAT_VERSION}: save it again with this version"
        )
    if fit_id != meta.get("fit_id"):
        raise CheckpointError(
            f"{META_FILE} and {TENSOR_FILE} in {path} come from different saves: save it again"
        )
    return meta, tensors


def _check_model(
    gaussians: list[TiedGaussian], input_shape: tuple[int, ...], model: nn.Module, path: str | Path
) -> None:
    """Refuse a model whose stages differ in number or width from the saved statistics."""
    probe = torch.zeros(1, *input_shape, device=model_device(model))
    with frozen_eval(model), torch.no_grad():
        dims = [f.shape[1] for f in pooled_features(model, probe)]
    saved = [g.means.shape[1] for g in gaussians]
    if dims != saved:
        raise CheckpointError(
            f"the detector in {path} was fitted on features of widths {saved}, but the model "
            f"gives {dims}: load it with the model it was fitted on"
        )
