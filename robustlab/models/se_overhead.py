"""What squeeze-and-excitation costs in parameters: the exact count beside the SE paper's Eq. 5.

Hu et al. (2018, Eq. 5) estimate the extra parameters of SE as ``(2 / r) * sum_s N_s * C_s^2``
(N_s blocks of C_s channels in stage s), ignoring biases and the rounding of the bottleneck.
A block of C channels with hidden width ``h = max(1, C // r)`` really adds ``2*C*h + h + C``
(two linear layers with biases). At r = 16 and C = 16 that is one hidden unit, where Eq. 5
counts 32 parameters; the exact count is 49.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from robustlab.models.layers.squeeze_excite import SqueezeExcite


def se_block_params(channels: int, reduction: int) -> int:
    """Exact parameters of one SE block: ``2*C*h + h + C`` with ``h = max(1, C // r)``."""
    hidden = max(1, channels // reduction)
    return 2 * channels * hidden + hidden + channels


@dataclass(frozen=True)
class SEOverhead:
    """SE parameters of a model: exact (with biases) and the SE paper's Eq. 5 estimate."""

    blocks: int
    exact: int
    eq5: float
    reduction: int | None  # r, when every block uses the same

    def to_results(self) -> dict:
        """The "se_overhead" fragment of results.json."""
        return {
            "reduction": self.reduction,
            "blocks": self.blocks,
            "exact_params": self.exact,
            "eq5_params": self.eq5,
        }


def se_overhead(model: nn.Module) -> SEOverhead | None:
    """Count the SE parameters of ``model`` block by block; None for a model without SE."""
    blocks = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    if not blocks:
        return None
    exact = sum(se_block_params(b.channels, b.reduction) for b in blocks)
    eq5 = sum(2 * b.channels**2 / b.reduction for b in blocks)
    reductions = {b.reduction for b in blocks}
    reduction = reductions.pop() if len(reductions) == 1 else None
    return SEOverhead(len(blocks), exact, eq5, reduction)
