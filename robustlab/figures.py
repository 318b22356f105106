"""The one figure helper of robustlab: one style, one DPI, one atomic PNG save.

Every figure the package draws (the sweep report, the explanation and SE attention figures,
the certified-vs-empirical curves) is made here: matplotlib's object API on the Agg canvas,
never pyplot, so no global figure state or display backend is involved and nothing stays open
after a save. [`save_figure`][robustlab.figures.save_figure] renders into a temporary file beside
the target and renames it over the target only when rendering succeeded, so a crashed job or a
figure that fails to draw never leaves half a PNG, nor a stray temporary file, and never clobbers an
earlier good one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robustlab.errors import ConfigError
from robustlab.fileio import atomic_path

DPI = 120  # every PNG of the package: pixel size = inches x DPI
PANEL_SIZE = (6.0, 4.0)  # inches of a one-panel figure
COLORS = [f"C{i}" for i in range(10)]  # matplotlib's default cycle, by name
LINESTYLES = ["-", "--", ":", "-."]


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """An empty ``width`` x ``height`` inch figure at ``DPI`` on its own Agg canvas;
    ``layout=None`` leaves the placement of axes to the caller."""
    if not (width > 0 and height > 0):
        raise ConfigError(f"a figure needs a positive size in inches; got {width} x {height}")
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_size(n_panels: int, rows: int | None = None) -> tuple[float, float]:
    """Size in inches of a panel grid: 6x4 for one panel, two panels per row beyond that
    (``rows``: when the panels do not fill their rows, e.g. one row per threat model)."""
    if n_panels <= 1:
        return PANEL_SIZE
    rows = math.ceil(n_panels / 2) if rows is None else rows
    return 10.0, (4.0 if rows == 1 else 3.6 * rows)


def panel_grid(n_panels: int, rows: Sequence[int] | None = None) -> tuple[Figure, list[Axes]]:
    """A figure of ``n_panels`` axes, two per row, sized by
    [`figure_size`][robustlab.figures.figure_size]; ``rows``: panels per row, each row starting on a
    new line of the grid. Unused cells are hidden."""
    cols = 1 if n_panels <= 1 else 2
    rows = list(rows) if rows else [cols] * math.ceil(max(n_panels, 1) / cols)
    fig = new_figure(*figure_size(n_panels, len(rows)))
    grid = fig.subplots(len(rows), cols, squeeze=False)
    axes: list[Axes] = []
    for row, used in enumerate(rows):
        axes += list(grid[row, :used])
        for ax in grid[row, used:]:
            ax.set_visible(False)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def save_figure(fig: Figure, path: str | Path, title: str = "", description: str = "") -> Path:
    """Render ``fig`` to the PNG ``path`` at ``DPI``, atomically, and release its artists.

    The PNG's text chunks carry ``title`` and ``description`` (what the panels show), so a
    reader or a test can tell what is drawn without looking at pixels. When rendering raises,
    the error propagates and ``path`` is left as it was (absent, or its earlier content).
    """
    path = Path(path)
    metadata = {key: text for key, text in (("Title", title), ("Description", description)) if text}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata=metadata)
    fig.clear()
    return path


__all__ = [
    "COLORS",
    "DPI",
    "LINESTYLES",
    "PANEL_SIZE",
    "figure_size",
    "new_figure",
    "panel_grid",
    "save_figure",
]
