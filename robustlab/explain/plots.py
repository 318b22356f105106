"""Per-job figures: the explanation grid and the SE attention shift.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display) and written
atomically, so a crashed job never leaves half a PNG. Colour scales are shared by the clean and
the adversarial map of a pair, so the two can be compared by eye; the normalisation is for
display only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from robustlab.explain.attribute import get_method
from robustlab.explain.report import ExplanationReport
from robustlab.explain.se_shift import SEAttention
from robustlab.fileio import atomic_path

DPI = 100
PANEL = 1.1  # inches per image panel


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    fig.clear()
    return path


def _image(ax, image: Tensor) -> None:
    """A [0, 1] image: grey for one channel, RGB otherwise."""
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())


def _pair_scale(method: str, clean: Tensor, adv: Tensor) -> dict:
    """One colour scale for both maps: diverging around 0 if the map has negative values."""
    both = torch.stack([clean, adv])
    top = float(both.abs().max()) or 1.0
    if get_method(method).rank_by_magnitude or float(both.min()) < 0:
        return {"cmap": "RdBu_r", "vmin": -top, "vmax": top}
    return {"cmap": "inferno", "vmin": 0.0, "vmax": top}


def _columns(report: ExplanationReport) -> list[str]:
    names = ["clean", "adversarial", "perturbation"]
    for method in report.display.maps:
        names += [f"{method}\nclean", f"{method}\nadv."]
    return names


def plot_explanations(report: ExplanationReport, path: str | Path) -> Path | None:
    """Grid of the first explained examples: clean | adversarial | perturbation | each method's
    map of both inputs (with the pair's Spearman ρ). None when there is nothing to show."""
    shown = report.display
    if shown is None or len(shown.clean) == 0:
        return None
    columns, rows = _columns(report), len(shown.clean)
    fig = Figure(figsize=(PANEL * len(columns), PANEL * rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for row in range(rows):
        delta = (shown.adversarial[row] - shown.clean[row]).mean(0)
        limit = float(delta.abs().max()) or 1.0
        _image(axes[row, 0], shown.clean[row])
        _image(axes[row, 1], shown.adversarial[row])
        axes[row, 2].imshow(delta.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[row, 0].set_ylabel(
            f"y={int(shown.labels[row])}\n{int(shown.clean_pred[row])}→"
            f"{int(shown.adversarial_pred[row])}",
            fontsize=8,
        )
        for m_index, (method, (clean, adv)) in enumerate(shown.maps.items()):
            scale = _pair_scale(method, clean[row], adv[row])
            axes[row, 3 + 2 * m_index].imshow(clean[row].numpy(), **scale)
            axes[row, 4 + 2 * m_index].imshow(adv[row].numpy(), **scale)
            rho = float(report.scores[method]["spearman"][row])
            axes[row, 4 + 2 * m_index].set_xlabel(f"ρ={rho:.2f}", fontsize=7)
    for col, name in enumerate(columns):
        axes[0, col].set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("y = label, predictions clean→adversarial; ρ = Spearman of the pair", fontsize=8)
    return _save(fig, path)


def _block_panel(ax, block) -> None:
    channels = range(block.clean.shape[1])
    moved = (block.adversarial - block.clean).abs().mean(0)
    ax.bar(channels, moved.numpy(), color="0.6", width=1.0, label="mean |Δs|")
    ax.plot(channels, block.clean.mean(0).numpy(), label="clean", lw=1)
    ax.plot(channels, block.adversarial.mean(0).numpy(), label="adversarial", lw=1)
    ax.set_ylim(0, 1)
    ax.set_title(
        f"{block.name}\n|Δs|={block.mean_abs_delta:.3f} cos={block.cosine:.3f}", fontsize=8
    )
    ax.tick_params(labelsize=6)


def plot_se_attention(source: ExplanationReport | SEAttention, path: str | Path) -> Path | None:
    """Mean excitation per channel, clean vs adversarial, for every SE block, and the last
    block's channel correlation (mean over classes) on both inputs. None without SE blocks."""
    se = source.se_attention if isinstance(source, ExplanationReport) else source
    if se is None or not se.blocks:
        return None
    panels = len(se.blocks) + 2
    cols = 3
    rows = -(-panels // cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, block in zip(axes, se.blocks, strict=False):
        _block_panel(ax, block)
    axes[0].legend(fontsize=7)
    last = se.blocks[-1]
    for ax, (name, corr) in zip(
        axes[len(se.blocks) :],
        (("clean", last.corr_clean), ("adversarial", last.corr_adversarial)),
        strict=False,
    ):
        image = ax.imshow(corr.nanmean(0).numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{last.name}: channel corr., {name}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.colorbar(image, ax=list(axes[len(se.blocks) : panels]), shrink=0.8)
    for ax in axes[panels:]:
        ax.set_visible(False)
    fig.suptitle(
        f"SE excitation s per channel, mean over {len(last.clean)} examples (bars: mean |Δs|)",
        fontsize=9,
    )
    return _save(fig, path)
