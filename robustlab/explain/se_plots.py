"""The SE attention figure: how far adversarial inputs move each block's channel attention."""

from __future__ import annotations

from pathlib import Path

import torch

from robustlab.explain.se_shift import SEAttention
from robustlab.figures import new_figure, save_figure

TITLE = "SE attention under attack"


def _shift_panel(ax, se: SEAttention) -> None:
    names = [b.name.removeprefix("stages.").removesuffix(".se") for b in se.blocks]
    ax.bar(range(len(names)), [b.mean_abs_delta for b in se.blocks], color="C1")
    for i, block in enumerate(se.blocks):
        ax.text(
            i,
            block.mean_abs_delta,
            f"{block.cosine:.3f}",
            ha="center",
            va="bottom",
            fontsize=6,
            rotation=90,
        )
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("SE block (stage.block); bar labels: cosine clean vs adversarial", fontsize=7)
    ax.set_ylabel("mean |Δs|", fontsize=8)
    ax.tick_params(labelsize=7)


def _channel_panel(ax, fig, se: SEAttention) -> None:
    width = max(b.clean.shape[1] for b in se.blocks)
    moved = torch.full((len(se.blocks), width), float("nan"))
    for i, block in enumerate(se.blocks):
        moved[i, : block.clean.shape[1]] = (block.adversarial - block.clean).abs().mean(0)
    image = ax.imshow(moved.numpy(), aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_yticks(
        range(len(se.blocks)), [b.name.removesuffix(".se") for b in se.blocks], fontsize=6
    )
    ax.set_xlabel("channel; colour: mean |Δs| per channel", fontsize=7)
    ax.tick_params(labelsize=6)
    fig.colorbar(image, ax=ax, fraction=0.05, format="%.2g")


def plot_se_attention(se: SEAttention | None, path: str | Path) -> Path | None:
    """Mean |Δs| and cosine per SE block, mean |Δs| per channel, and the last block's channel
    correlation (mean over classes) on clean and adversarial inputs. None without SE blocks."""
    if se is None or not se.blocks:
        return None
    fig = new_figure(10.0, 7.0, layout=None)
    axes = fig.subplots(2, 2)
    fig.subplots_adjust(left=0.1, right=0.96, top=0.9, bottom=0.08, hspace=0.45, wspace=0.3)
    _shift_panel(axes[0, 0], se)
    _channel_panel(axes[0, 1], fig, se)
    last = se.blocks[-1]
    for ax, name, corr in (
        (axes[1, 0], "clean", last.corr_clean),
        (axes[1, 1], "adversarial", last.corr_adversarial),
    ):
        image = ax.imshow(corr.nanmean(0).numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{last.name}: channel correlation of s, {name}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.colorbar(image, ax=list(axes[1]), fraction=0.03)
    fig.suptitle(f"SE excitation s under attack ({len(last.clean)} examples)", fontsize=9)
    return save_figure(fig, path, TITLE)
