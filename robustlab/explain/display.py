"""What the per-job explanation figure shows: the first explained examples and their maps."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ExplanationDisplay:
    """The first few explained examples, for the per-job figure (all on CPU).

    ``maps[method]``: the (clean, adversarial) maps; ``spearman[method]``: each pair's rank
    correlation, printed under it.
    """

    clean: Tensor
    adversarial: Tensor
    labels: Tensor
    clean_pred: Tensor
    adversarial_pred: Tensor
    maps: dict[str, tuple[Tensor, Tensor]]
    spearman: dict[str, Tensor]
