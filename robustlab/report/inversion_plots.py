"""The sweep's inversion figure: original | inversion from each layer, one row per configuration.

Rows of the same model with different defenses sit next to each other, so a standard model's
reconstructions can be read against a robust one's. The arrays are read with numpy from each
job's safetensors file; no torch is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robustlab.figures import new_figure, save_figure
from robustlab.report.plots import PlotOutcome
from robustlab.report.records import RunRecord
from robustlab.report.tables import ConfigGroup

TITLE = "Feature inversion per layer"
ORIGINALS = "originals"


def _tile(array: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> what imshow draws: (H, W) for one channel, (H, W, 3) for RGB."""
    return array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))


def _depth(layer: str) -> tuple[int, int]:
    """Shallow to deep: stage0, stage1, ..., then the logits (the file's keys come sorted)."""
    return (0, int(layer.removeprefix("stage"))) if layer.startswith("stage") else (1, 0)


def inversion_rows(
    records: Sequence[RunRecord], groups: Sequence[ConfigGroup], image: int = 0
) -> list[tuple[str, list[str], list[np.ndarray]]]:
    """Per configuration with saved inversions: label, column names and tiles of ``image``."""
    from safetensors.numpy import load_file

    # the file name belongs to the explain room, which imports torch: read it only here
    from robustlab.explain.inversion_study import INVERSIONS_FILE

    by_job = {r.job: r for r in records}
    rows = []
    for group in sorted(groups, key=lambda g: (g.dataset, g.model, g.defense != "none")):
        path = group.first_file(by_job, INVERSIONS_FILE)
        if path is None:
            continue
        arrays = load_file(str(path))
        names = [ORIGINALS, *sorted((k for k in arrays if k != ORIGINALS), key=_depth)]
        if image >= len(arrays[ORIGINALS]):
            continue
        rows.append((group.label, names, [_tile(arrays[n][image]) for n in names]))
    return rows


def plot_inversions(
    records: Sequence[RunRecord], groups: Sequence[ConfigGroup], path: str | Path
) -> PlotOutcome:
    """One row per configuration: the original image, then its inversion from each layer."""
    rows = inversion_rows(records, groups)
    if not rows:
        return PlotOutcome(TITLE, None, "no job saved feature inversions (explain.inversion)")
    columns = max(len(names) for _, names, _ in rows)
    fig = new_figure(1.3 * columns + 1.5, 1.3 * len(rows) + 0.4)
    grid = fig.subplots(len(rows), columns, squeeze=False)
    for r, (label, names, tiles) in enumerate(rows):
        for c, ax in enumerate(grid[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles):
                ax.set_visible(False)
                continue
            ax.imshow(tiles[c], cmap="gray", vmin=0.0, vmax=1.0)
            if r == 0:
                ax.set_title(names[c], fontsize=8)
        grid[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    description = "rows: " + "; ".join(label for label, _, _ in rows)
    return PlotOutcome(TITLE, save_figure(fig, path, TITLE, description))
