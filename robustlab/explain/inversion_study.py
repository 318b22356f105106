"""The inversion study of one model: every stage (and the logits) inverted on the same images.

It answers two questions of the background documents per model: do early layers keep more
spatial information than later ones (pixel error grows with depth), and, across a sweep, do
adversarially trained models invert closer to the original at the last stage (Engstrom et al.
2019)? The reconstructions are saved as a safetensors file of numpy arrays, so the sweep
report can draw standard and robust models side by side without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.explain.inversion import Inversion, Layer, invert
from robustlab.fileio import atomic_path
from robustlab.models.inference import model_context, model_device

INVERSIONS_FILE = "inversions.safetensors"
ORIGINALS = "originals"


def layer_key(layer: Layer) -> str:
    """``0`` -> ``"stage0"``; ``"logits"`` stays."""
    return layer if isinstance(layer, str) else f"stage{layer}"


@dataclass
class InversionStudy:
    """One model's inversions of the same ``originals`` from each layer, shallow to deep."""

    originals: Tensor
    inversions: dict[str, Inversion]
    options: dict

    def medians(self) -> dict[str, dict[str, float]]:
        """Per layer, the median feature and pixel errors."""
        return {key: inversion.medians() for key, inversion in self.inversions.items()}

    def to_results(self) -> dict:
        """The "inversion" fragment of results.json."""
        return {"n_images": len(self.originals), "layers": self.medians(), **self.options}

    def save(self, directory: str | Path) -> Path:
        """Save originals and reconstructions (float32) to ``directory/INVERSIONS_FILE``."""
        from safetensors.numpy import save_file

        arrays = {ORIGINALS: self.originals.numpy().astype(np.float32)}
        arrays |= {k: v.images.numpy().astype(np.float32) for k, v in self.inversions.items()}
        path = Path(directory) / INVERSIONS_FILE
        with atomic_path(path) as tmp:
            save_file(arrays, str(tmp), metadata={"layers": ",".join(self.inversions)})
        return path


def stage_count(model: nn.Module, images: Tensor) -> int:
    """How many stages ``model.forward_features`` returns (one forward pass on one image)."""
    with model_context(model, "eval"), torch.no_grad():
        return len(model.forward_features(images[:1].to(model_device(model))))


def inversion_study(
    model: nn.Module,
    images: Tensor,
    layers: Sequence[Layer] | None = None,
    *,
    regularizer: str = "tv",
    weight: float = 0.01,
    steps: int = 300,
    lr: float = 0.05,
    start: str = "constant",
) -> InversionStudy:
    """Invert ``images`` from each of ``layers`` (default: every stage, then the logits)."""
    if layers is None:
        layers = [*range(stage_count(model, images)), "logits"]
    options = {"regularizer": regularizer, "weight": weight, "steps": steps, "lr": lr}
    inversions = {
        layer_key(layer): invert(
            model,
            images,
            layer,
            regularizer=regularizer,
            weight=weight,
            steps=steps,
            lr=lr,
            start=start,
        )
        for layer in layers
    }
    return InversionStudy(images.detach().cpu(), inversions, options | {"start": start})
