"""Saving and loading a fitted detector: safetensors + JSON, never pickle.

A detector directory holds ``detector.safetensors`` (the detector's statistics and the
ensemble weights) and ``detector.json`` (which detector, its settings, the chosen setting,
shapes). Both are written atomically and carry the same random ``fit_id``, so a pair from two
different saves (a crash between the two renames) is refused instead of silently mixed. Every
value read back is checked: a foreign or tampered file is one ``CheckpointError``, never code
run or a crash deep inside scoring.

This module knows the file format and the [`Detector`][robustlab.detection.Detector] interface,
never a concrete detector: [`SaveLoadMixin`][robustlab.detection.SaveLoadMixin] gives each concrete
class its ``save``/``load``, and
[`robustlab.detection.load_detector`][robustlab.detection.load_detector] (in the registry, which
knows every detector by name) loads whichever detector a directory holds.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from robustlab.detection.base import Detector
from robustlab.errors import CheckpointError, RobustlabError
from robustlab.fileio import write_json_atomic, write_tensors_atomic

# per attack, per curve (a detector's name or "msp"): (clean scores, adversarial scores)
ScoreSets = Mapping[str, Mapping[str, tuple]]
SEPARATOR = "::"  # between attack, curve and side in the keys of the scores file

D = TypeVar("D", bound=Detector)

FORMAT_VERSION = 1
TENSOR_FILE = "detector.safetensors"
META_FILE = "detector.json"
WEIGHTS_KEY = "ensemble.weights"
# Files written before the detector interface existed were all Mahalanobis detectors.
LEGACY_DETECTOR = "mahalanobis"


class SaveLoadMixin:
    """``save(path)`` and ``load(path, model)`` for a concrete detector, listed before
    [`Detector`][robustlab.detection.Detector] among its bases (``class MyDetector(SaveLoadMixin,
    Detector)``)."""

    def save(self: Detector, path: str | Path) -> None:
        """Write ``path/detector.safetensors`` and ``path/detector.json`` (atomic, no pickle)."""
        self._require_fitted()
        save_detector(self, path)

    @classmethod
    def load(cls: type[D], path: str | Path, model: nn.Module) -> D:
        """Load a detector of this class saved by ``save`` and attach it to ``model`` (checked
        to match); a file of another detector is refused (see ``load_detector`` for any)."""
        return read_detector(cls, path, model)


def save_detector(detector: Detector, path: str | Path) -> None:
    """Write a fitted detector into the directory ``path``."""
    path = Path(path)
    fit_id = uuid.uuid4().hex
    tensors, state = detector._state()
    if detector.weights is not None:
        tensors[WEIGHTS_KEY] = detector.weights
    meta = {
        **state,
        "format_version": FORMAT_VERSION,
        "fit_id": fit_id,
        "detector": detector.name,
        "input_shape": list(detector.input_shape),
        "intercept": detector.intercept,
        "ensemble": detector.weights is not None,
    }
    write_tensors_atomic(path / TENSOR_FILE, tensors, metadata={"fit_id": fit_id})
    # The JSON goes last: its presence marks a complete save.
    write_json_atomic(path / META_FILE, meta)


def saved_detector_name(path: str | Path) -> object:
    """The name of the detector saved in ``path`` (as the file says; checked by the caller)."""
    return _read_meta(Path(path)).get("detector", LEGACY_DETECTOR)


def read_detector(cls: type[D], path: str | Path, model: nn.Module) -> D:
    """Read a directory written by ``save_detector`` into ``cls`` and attach ``model``."""
    meta, tensors = _read(Path(path))
    name = meta.get("detector", LEGACY_DETECTOR)
    if name != cls.name:
        raise CheckpointError(
            f"{path} holds a {name!r} detector, not {cls.name!r}: load it with its own class "
            "or robustlab.detection.load_detector(path, model)"
        )
    try:
        detector = cls._restore(tensors, meta)
        detector.input_shape = tuple(int(d) for d in meta["input_shape"])
        detector.intercept = float(meta["intercept"])
        if not math.isfinite(detector.intercept):
            raise ValueError("the ensemble intercept is not finite")
        if meta["ensemble"] is True:
            detector.weights = _weights(tensors[WEIGHTS_KEY])
    except KeyError as err:
        raise CheckpointError(f"detector file in {path} lacks {err}: save it again") from err
    except (TypeError, ValueError, IndexError, AttributeError, RobustlabError) as err:
        raise CheckpointError(
            f"the detector file in {path} is malformed ({err}): save it again"
        ) from err
    _check_model(detector, model, path)
    detector._attach(model)
    return detector


def _weights(tensor: torch.Tensor) -> torch.Tensor:
    weights = tensor.float()
    if weights.ndim != 1 or not torch.isfinite(weights).all():
        raise ValueError(
            f"ensemble weights must be a finite vector, got shape {tuple(tensor.shape)}"
        )
    return weights


def _read_meta(path: Path) -> dict:
    meta_path, tensor_path = path / META_FILE, path / TENSOR_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(
            f"no saved detector in {path}: expected {META_FILE} and {TENSOR_FILE} "
            "written by a detector's save(path)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise _foreign(path, err) from err
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"detector in {path} has format {version!r}, expected "
            f"{FORMAT_VERSION}: save it again with this version"
        )
    return meta


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = _read_meta(path)
    try:
        with safe_open(str(path / TENSOR_FILE), framework="pt") as handle:
            fit_id = (handle.metadata() or {}).get("fit_id")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, ValueError, SafetensorError) as err:
        raise _foreign(path, err) from err
    if fit_id != meta.get("fit_id"):
        raise CheckpointError(
            f"{META_FILE} and {TENSOR_FILE} in {path} come from different saves: save it again"
        )
    return meta, tensors


def _foreign(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"cannot read the detector in {path} ({err}): it is not a detector saved by "
        "robustlab (safetensors + JSON); save it again"
    )


def _check_model(detector: Detector, model: nn.Module, path: str | Path) -> None:
    """Refuse a model whose features differ in number or width from the saved statistics."""
    saved = detector._feature_widths()
    try:
        dims = detector._feature_widths(model)
    except (RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"the model cannot run the detector in {path} on inputs of shape "
            f"{list(detector.input_shape)} ({err}): load it with the model it was fitted on"
        ) from err
    if dims != saved:
        raise CheckpointError(
            f"the detector in {path} was fitted on features of widths {saved}, but the model "
            f"gives {dims}: load it with the model it was fitted on"
        )
    if detector.weights is not None and len(detector.weights) != detector.num_scores:
        raise CheckpointError(
            f"the detector in {path} has {len(detector.weights)} ensemble weights for "
            f"{detector.num_scores} layer scores: save it again"
        )


def write_detection_scores(path: str | Path, scores: ScoreSets) -> None:
    """Per-example scores (clean and adversarial per attack and curve) as safetensors."""
    tensors = {}
    for attack, curves in scores.items():
        for name, (clean, adv) in curves.items():
            for side, values in (("clean", clean), ("adversarial", adv)):
                key = SEPARATOR.join((attack, name, side))
                flat = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1)
                tensors[key] = flat.to(torch.float32)
    write_tensors_atomic(path, tensors)


def read_detection_scores(path: str | Path) -> dict[str, dict[str, tuple[np.ndarray, ...]]]:
    """The scores written by ``write_detection_scores``, as numpy arrays."""
    flat = load_file(str(path))
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for key in sorted(flat):
        attack, name, side = key.rsplit(SEPARATOR, 2)
        if side == "clean":
            adv_key = SEPARATOR.join((attack, name, "adversarial"))
            out.setdefault(attack, {})[name] = (flat[key].numpy(), flat[adv_key].numpy())
    return out
