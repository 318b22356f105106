"""The one figure helper: one DPI, the Agg canvas without pyplot, and an atomic PNG save."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from robustlab import figures
from robustlab.certify import plot_certified_vs_empirical

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def _chunks(path: Path) -> dict[bytes, bytes]:
    """The PNG's chunks by type (the first of each), read from the bytes."""
    data = path.read_bytes()
    assert data[:8] == PNG
    chunks, at = {}, 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        chunks.setdefault(kind, data[at + 8 : at + 8 + length])
        at += 12 + length  # length, type, data, CRC
    return chunks


def _broken(fig) -> None:
    # an unknown TeX command only fails when the figure is rendered, i.e. inside the save
    fig.subplots().set_title(r"$\notacommand$")


def test_a_saved_figure_is_a_png_of_inches_times_dpi(tmp_path):
    fig = figures.new_figure(2.5, 1.5)
    fig.subplots().plot([0, 1], [1, 0])
    path = figures.save_figure(fig, tmp_path / "sub" / "line.png", "A line", "one panel")
    assert path == tmp_path / "sub" / "line.png"
    chunks = _chunks(path)
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert (width, height) == (round(2.5 * figures.DPI), round(1.5 * figures.DPI))
    x_ppm, y_ppm, unit = struct.unpack(">IIB", chunks[b"pHYs"])
    assert unit == 1 and x_ppm == y_ppm == round(figures.DPI / 0.0254)  # pixels per metre
    text = Image.open(path).text
    assert (text["Title"], text["Description"]) == ("A line", "one panel")
    assert sorted(p.name for p in path.parent.iterdir()) == ["line.png"]  # no temporary left


def test_a_failing_draw_leaves_no_file_and_no_temporary_file(tmp_path):
    fig = figures.new_figure(2.0, 2.0)
    _broken(fig)
    with pytest.raises(ValueError, match="notacommand"):
        figures.save_figure(fig, tmp_path / "broken.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_does_not_clobber_an_existing_figure(tmp_path):
    good = figures.new_figure(2.0, 2.0)
    good.subplots().bar([0, 1], [1, 2])
    path = figures.save_figure(good, tmp_path / "figure.png", "good")
    before = path.read_bytes()
    fig = figures.new_figure(3.0, 3.0)
    _broken(fig)
    with pytest.raises(ValueError):
        figures.save_figure(fig, path, "broken")
    assert path.read_bytes() == before and Image.open(path).text["Title"] == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


@pytest.mark.parametrize(
    ("n_panels", "rows", "size"),
    [
        (1, None, (6.0, 4.0)),
        (2, None, (10.0, 4.0)),
        (5, None, (10.0, 3.6 * 3)),
        (3, 3, (10.0, 3.6 * 3)),
    ],
)
def test_figure_size_closed_forms(n_panels, rows, size):
    assert figures.figure_size(n_panels, rows) == pytest.approx(size)


def test_panel_grid_shows_exactly_the_panels_asked_for():
    fig, axes = figures.panel_grid(3, rows=[1, 2])  # one panel, then a row of two
    assert len(axes) == 3 and all(ax.get_visible() for ax in axes)
    assert sum(ax.get_visible() for ax in fig.axes) == 3 and len(fig.axes) == 4
    first, second = (ax.get_subplotspec().rowspan.start for ax in axes[:2])
    assert (first, second) == (0, 1)  # the second row starts on a new line of the grid
    assert fig.get_size_inches().tolist() == list(figures.figure_size(3, rows=2))


@pytest.mark.parametrize("size", [(0.0, 2.0), (2.0, -1.0), (float("nan"), 1.0)])
def test_a_figure_without_a_positive_size_is_one_clear_error(size):
    with pytest.raises(ValueError, match="positive size in inches"):
        figures.new_figure(*size)


def test_certified_figures_use_the_one_dpi(tmp_path):
    series = {"cnn / none": {"certified (smoothing)": {0.0: 0.9, 0.5: 0.4}}}
    path = plot_certified_vs_empirical(series, tmp_path / "certified.png")
    assert Image.open(path).size == (round(4.2 * figures.DPI), round(3.4 * figures.DPI))


def test_figures_are_drawn_without_pyplot_or_torch(tmp_path):
    code = (
        "import sys; from robustlab import figures as f; "
        "fig = f.new_figure(1, 1); fig.subplots().plot([0, 1]); "
        f"f.save_figure(fig, {str(tmp_path / 'x.png')!r}); "
        "print(sorted(m for m in ('matplotlib.pyplot', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]" and (tmp_path / "x.png").read_bytes()[:8] == PNG


def test_only_the_helper_creates_or_saves_figures():
    # one DPI and one atomic save hold only while no other module makes its own canvas
    makers = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "robustlab").rglob("*.py"))
        if any(name in path.read_text(encoding="utf-8") for name in ("savefig(", "FigureCanvas"))
    ]
    assert makers == ["robustlab/figures.py"]
