"""Adversarial data sets on disk, in torchattacks' own file format.

``attack.save(loader, "adv.pt")`` writes what ``torchattacks.Attack.save`` writes: a
``torch.save`` dict of tensors (``adv_inputs``, ``labels``, optionally ``preds`` and
``clean_inputs``, images in [0, 1]) plus ``save_type`` (``"float"``, or ``"int"`` for uint8
images x 255), which ``torch.load(path, weights_only=True)`` and ``torchattacks.Attack.load``
read. A path ending in ``.safetensors`` gets the same tensors as safetensors (no pickle at
all). `load_adversarial` reads either kind, from robustlab or from torchattacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, TensorDataset

from robustlab.errors import ConfigError

log = logging.getLogger(__name__)

IMAGE_KEYS = ("adv_inputs", "clean_inputs")
SAFETENSORS_SUFFIX = ".safetensors"


def _progress(step: int, total: int, accuracy: float, l2: float, seconds: float, end: str):
    """torchattacks' progress line, so that logs read the same under both imports."""
    print(
        f"- Save progress: {100 * step / max(total, 1):2.2f} % / Robust accuracy: "
        f"{accuracy:2.2f} % / L2: {l2:1.5f} ({seconds:2.3f} it/s) \t",
        end=end,
        flush=True,
    )


def attack_loader(
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    predict: Callable[[torch.Tensor], torch.Tensor],
    data_loader: Iterable,
    verbose: bool,
) -> tuple[dict[str, list[torch.Tensor]], tuple[float, float, float]]:
    """Attack every ``(inputs, labels)`` batch; ``predict`` maps adversarial images in [0, 1]
    to labels. Returns the CPU chunks per key and (robust accuracy %, mean L2 of the fooled
    images, seconds of the last batch), printing torchattacks' progress line when ``verbose``."""
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in ("adv", "clean", "labels", "preds")}
    correct, total, distances, seconds = 0, 0, [], 0.0
    batches = len(data_loader) if hasattr(data_loader, "__len__") else 0
    for step, (inputs, labels) in enumerate(data_loader, 1):
        started = time.perf_counter()
        adv, clean = attack(inputs, labels)
        preds = predict(adv).cpu()
        right = preds == labels.cpu()
        correct, total = correct + int(right.sum()), total + len(labels)
        distances.append((adv - clean).flatten(1).norm(dim=1)[~right])
        for key, value in zip(parts, (adv, clean, labels.cpu(), preds), strict=True):
            parts[key].append(value)
        seconds = time.perf_counter() - started
        if verbose:
            _progress(step, batches or step, *_figures(correct, total, distances), seconds, "\r")
    figures = (*_figures(correct, total, distances), seconds)
    if verbose:
        _progress(1, 1, *figures, end="\n")
    return parts, figures


def _figures(correct: int, total: int, distances: list[torch.Tensor]) -> tuple[float, float]:
    fooled = torch.cat(distances) if distances else torch.zeros(0)
    return 100.0 * correct / max(total, 1), float(fooled.mean()) if fooled.numel() else 0.0


def write_adversarial(
    parts: dict[str, list[torch.Tensor]],
    save_path: str | Path,
    save_predictions: bool,
    save_clean_inputs: bool,
    save_type: str,
) -> None:
    """Write the chunks of `attack_loader` in torchattacks' format (or safetensors)."""
    if save_type not in ("float", "int"):
        raise ConfigError(f"save_type must be 'float' or 'int', got {save_type!r}")
    tensors = {"adv_inputs": torch.cat(parts["adv"]), "labels": torch.cat(parts["labels"])}
    if save_predictions:
        tensors["preds"] = torch.cat(parts["preds"])
    if save_clean_inputs:
        tensors["clean_inputs"] = torch.cat(parts["clean"])
    if save_type == "int":
        for key in set(IMAGE_KEYS) & set(tensors):
            tensors[key] = (tensors[key] * 255).round().to(torch.uint8)
    tensors = {key: value.contiguous() for key, value in tensors.items()}
    if str(save_path).endswith(SAFETENSORS_SUFFIX):
        save_file(tensors, str(save_path), metadata={"save_type": save_type})
    else:
        torch.save({**tensors, "save_type": save_type}, str(save_path))


def load_adversarial(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a file written by ``attack.save`` (robustlab's or torchattacks'), read
    without unpickling code; uint8 images come back as [0, 1] floats."""
    path = str(path)
    with open(path, "rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"  # torch.save's zip container
    if zipped:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        tensors = {key: value for key, value in raw.items() if torch.is_tensor(value)}
    else:
        tensors = load_file(path)
    for key in IMAGE_KEYS:
        if key in tensors and tensors[key].dtype == torch.uint8:
            tensors[key] = tensors[key].float() / 255
    return tensors


def load(
    load_path: str | Path,
    batch_size: int = 128,
    shuffle: bool = False,
    normalize: dict | None = None,
    load_predictions: bool = False,
    load_clean_inputs: bool = False,
) -> DataLoader:
    """torchattacks' ``Attack.load``: a DataLoader over ``adv_inputs, labels`` (then ``preds``,
    ``clean_inputs`` when asked) of a saved file; ``normalize={"mean", "std"}`` normalises."""
    tensors = load_adversarial(load_path)
    keys = ["adv_inputs", "labels"]
    keys += ["preds"] if load_predictions else []
    keys += ["clean_inputs"] if load_clean_inputs else []
    missing = [key for key in keys if key not in tensors]
    if missing:
        raise ConfigError(f"{load_path} holds no {', '.join(missing)}: save it with them")
    if normalize is not None:
        mean = torch.as_tensor(normalize["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(normalize["std"], dtype=torch.float32).reshape(1, -1, 1, 1)
        for key in set(IMAGE_KEYS) & set(keys):
            tensors[key] = (tensors[key] - mean) / std
    data = TensorDataset(*[tensors[key] for key in keys])
    # torchattacks prints this on every load; here it is information, not a requested output
    log.info("Data is loaded in the following order: [%s]", ", ".join(keys))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle)


__all__ = ["attack_loader", "load", "load_adversarial", "write_adversarial"]
