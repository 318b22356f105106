"""The per-job explanation grid: clean and adversarial inputs and each method's maps of both.

Made and saved through [`robustlab.figures`][robustlab.figures] (the Agg canvas, one DPI, an atomic
save, so a crashed job never leaves half a PNG). The grid is one mosaic image (each tile coloured by
its own colour map) rather than dozens of axes, which keeps a figure well under a second. The clean
and the adversarial map of a pair share one colour scale, so they can be compared by eye; the
normalisation is for display only.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.colors import Normalize
from torch import Tensor

from robustlab.explain.display import ExplanationDisplay
from robustlab.explain.registry import ranks_by_magnitude
from robustlab.figures import new_figure, save_figure

TITLE = "Explanations of clean and adversarial inputs"


def _rgb(values: Tensor, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """An (H, W) map coloured with ``cmap`` as (H, W, 3) floats."""
    return matplotlib.colormaps[cmap](Normalize(vmin, vmax)(values.numpy()))[..., :3]


def _image_rgb(image: Tensor) -> np.ndarray:
    """A [0, 1] image as (H, W, 3): grey for one channel, its colours otherwise."""
    pixels = image.clamp(0, 1).permute(1, 2, 0).numpy()
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]


def _pair_tiles(method: str, clean: Tensor, adv: Tensor) -> list[np.ndarray]:
    """Both maps on one scale: diverging around 0 if the map is signed, else 0..max."""
    top = float(torch.stack([clean, adv]).abs().max()) or 1.0
    signed = ranks_by_magnitude(method) or float(torch.minimum(clean, adv).min()) < 0
    cmap, low = ("RdBu_r", -top) if signed else ("inferno", 0.0)
    return [_rgb(clean, cmap, low, top), _rgb(adv, cmap, low, top)]


def _row_tiles(shown: ExplanationDisplay, row: int) -> list[np.ndarray]:
    delta = (shown.adversarial[row] - shown.clean[row]).mean(0)
    limit = float(delta.abs().max()) or 1.0
    tiles = [
        _image_rgb(shown.clean[row]),
        _image_rgb(shown.adversarial[row]),
        _rgb(delta, "RdBu_r", -limit, limit),
    ]
    for method, (clean, adv) in shown.maps.items():
        tiles += _pair_tiles(method, clean[row], adv[row])
    return tiles


def _mosaic(rows: list[list[np.ndarray]], gap_x: int, gap_y: int) -> np.ndarray:
    height, width = rows[0][0].shape[:2]
    canvas = np.ones((len(rows) * (height + gap_y), len(rows[0]) * (width + gap_x), 3))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            y, x = r * (height + gap_y), c * (width + gap_x)
            canvas[y : y + height, x : x + width] = tile
    return canvas


def plot_explanations(shown: ExplanationDisplay | None, path: str | Path) -> Path | None:
    """Grid of the first explained examples: clean | adversarial | perturbation | each method's
    map of both inputs (with the pair's Spearman ρ). None when there is nothing to show
    (``shown``: an [`ExplanationReport`][robustlab.explain.ExplanationReport]'s ``display``)."""
    if shown is None or len(shown.clean) == 0 or not shown.maps:
        return None
    height, width = shown.clean.shape[-2:]
    gap_x, gap_y = max(1, width // 8), max(2, height // 3)
    rows = [_row_tiles(shown, r) for r in range(len(shown.clean))]
    columns = ["clean", "adversarial", "perturbation"]
    for method in shown.maps:
        columns += [f"{method}\nclean", f"{method}\nadv."]
    fig = new_figure(0.85 * len(columns) + 0.7, 0.95 * len(rows) + 0.8, layout=None)
    ax = fig.add_axes((0.7 / fig.get_figwidth(), 0.02, 1 - 0.75 / fig.get_figwidth(), 0.8))
    ax.imshow(_mosaic(rows, gap_x, gap_y), interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for c, name in enumerate(columns):
        ax.text(c * (width + gap_x) + width / 2, -1, name, ha="center", va="bottom", fontsize=7)
    for r in range(len(rows)):
        top = r * (height + gap_y)
        label = (
            f"y={int(shown.labels[r])}\n{int(shown.clean_pred[r])}→{int(shown.adversarial_pred[r])}"
        )
        ax.text(-1, top + height / 2, label, ha="right", va="center", fontsize=7)
        for m, method in enumerate(shown.maps):
            rho = float(shown.spearman[method][r])
            x = (4 + 2 * m) * (width + gap_x) - gap_x / 2
            ax.text(
                x, top + height + gap_y / 2, f"ρ={rho:.2f}", ha="center", va="center", fontsize=6
            )
    fig.suptitle(
        "y = label, predictions clean→adversarial; ρ = Spearman of each clean/adversarial pair",
        fontsize=8,
    )
    return save_figure(fig, path, TITLE)
