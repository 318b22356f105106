"""How far adversarial inputs move SE channel attention, block by block and stage by stage."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.explain.se_attention import (
    channel_correlation,
    dead_blocks,
    record_se_activity,
    stage_of,
)


@dataclass
class BlockShift:
    """One SE block: per-example excitations (N, C) clean/adversarial and the class-wise
    channel-correlation matrices (K, C, C). ``dead``: its excitation does not depend on the
    input (see ``dead_se_blocks``), so its zero shift
    says nothing about robustness."""

    name: str
    clean: Tensor
    adversarial: Tensor
    corr_clean: Tensor
    corr_adversarial: Tensor
    dead: bool = False

    @property
    def stage(self) -> str:
        return stage_of(self.name)

    @property
    def mean_abs_delta(self) -> float:
        return float((self.adversarial - self.clean).abs().mean())

    @property
    def cosine(self) -> float:
        return float(F.cosine_similarity(self.clean, self.adversarial, dim=1).mean())

    def top_channels(self, count: int = 5) -> list[dict[str, float]]:
        """The channels whose attention moves most (mean |delta s| over examples)."""
        moved = (self.adversarial - self.clean).abs().mean(0)
        top = moved.argsort(descending=True)[:count].tolist()
        return [
            {
                "channel": c,
                "mean_abs_delta": float(moved[c]),
                "clean": float(self.clean[:, c].mean()),
                "adversarial": float(self.adversarial[:, c].mean()),
            }
            for c in top
        ]

    @property
    def correlation_shift(self) -> float:
        """Mean |corr_adv - corr_clean| over off-diagonal pairs and classes with data."""
        off = ~torch.eye(self.clean.shape[1], dtype=torch.bool)
        diff = (self.corr_adversarial - self.corr_clean).abs()[:, off]
        return float(diff.nanmean()) if not diff.isnan().all() else float("nan")


@dataclass
class SEAttention:
    """The shift of every SE block of one model."""

    blocks: list[BlockShift]

    def stages(self) -> dict[str, dict[str, float]]:
        """Per stage, the block averages of mean |delta s| and cosine, and its dead blocks."""
        grouped: dict[str, list[BlockShift]] = {}
        for block in self.blocks:
            grouped.setdefault(block.stage, []).append(block)
        return {
            stage: {
                "mean_abs_delta": sum(b.mean_abs_delta for b in group) / len(group),
                "cosine": sum(b.cosine for b in group) / len(group),
                "blocks": len(group),
                "dead_blocks": [b.name for b in group if b.dead],
            }
            for stage, group in grouped.items()
        }

    @property
    def dead_blocks(self) -> list[str]:
        """Names of the blocks whose excitation is constant over the evaluated inputs."""
        return [b.name for b in self.blocks if b.dead]

    def warnings(self) -> list[str]:
        """One line per dead block: its shift of 0.0 is a constant, not robustness."""
        return [
            f"SE block {name} is dead: its excitation is the same for every evaluated input "
            f"(no bottleneck unit passes the ReLU, or zero variance), so its clean-vs-adversarial "
            f"shift of 0.0 is a constant, not robustness; a smaller se_reduction widens it"
            for name in self.dead_blocks
        ]

    def to_results(self, top: int = 5) -> dict:
        """The "se_attention" fragment of results.json."""
        blocks = {
            b.name: {
                "dead": b.dead,
                "mean_abs_delta": b.mean_abs_delta,
                "cosine": b.cosine,
                "channel_correlation_shift": b.correlation_shift,
                "top_channels": b.top_channels(top),
            }
            for b in self.blocks
        }
        return {
            "n_examples": len(self.blocks[0].clean),
            "stages": self.stages(),
            "blocks": blocks,
            "dead_blocks": self.dead_blocks,
        }


def _joined(first: dict[str, Tensor], second: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: torch.cat([first[name], second[name]]) for name in first}


def se_attention_shift(
    model: nn.Module, clean: Tensor, adversarial: Tensor, labels: Tensor, *, num_classes: int
) -> SEAttention | None:
    """Excitations on clean and adversarial inputs, block by block; None without SE blocks."""
    clean_s, clean_active = record_se_activity(model, clean)
    if not clean_s:
        return None
    adv_s, adv_active = record_se_activity(model, adversarial)
    # dead over clean and adversarial inputs together, from the two passes just made
    dead = set(dead_blocks(_joined(clean_s, adv_s), _joined(clean_active, adv_active)))
    labels = labels.cpu()
    return SEAttention(
        [
            BlockShift(
                name,
                clean_s[name],
                adv_s[name],
                channel_correlation(clean_s[name], labels, num_classes),
                channel_correlation(adv_s[name], labels, num_classes),
                dead=name in dead,
            )
            for name in clean_s
        ]
    )
