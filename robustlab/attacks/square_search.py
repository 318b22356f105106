"""Bookkeeping of the Square attack's random search: per-row random streams and, for Linf, the
proposals each row has already evaluated from its current iterate.

Both only save work: the search itself (which proposals are drawn and kept) is that of
`robustlab.attacks.square`.
"""

from __future__ import annotations

import torch

from robustlab.attacks import row_random

# A memo larger than this many entries per row (e.g. big colour images) is not kept.
MAX_MEMO_KEYS = 1 << 20


class DrawStream:
    """Uniform draws, one (k,) vector per row and iteration, generated in blocks of iterations
    for every row in a fixed order: row i's draw at iteration t depends only on the generator's
    seed, the batch size, i and t. Blocks no row needs any more are dropped."""

    def __init__(self, rows: int, k: int, generator: row_random.Generator, block: int = 256):
        self.rows, self.k, self.generator, self.block = rows, k, generator, block
        self.low = 0
        self.buffer = torch.empty(rows, 0, k)

    def take(self, rows: torch.Tensor, iteration: torch.Tensor) -> torch.Tensor:
        """(M, k) draws of ``rows`` (CPU int64) at their ``iteration``."""
        needed = int(iteration.max()) + 1 - self.low
        while self.buffer.shape[1] < needed:
            fresh = row_random.rand((self.rows, self.block, self.k), self.generator)
            self.buffer = torch.cat([self.buffer, fresh], dim=1)
        return self.buffer[rows, iteration - self.low]

    def release(self, lowest: int) -> None:
        """Forget the iterations below ``lowest`` (the smallest iteration still to draw)."""
        drop = (lowest - self.low) // self.block * self.block
        if drop > 0:
            self.buffer, self.low = self.buffer[:, drop:], self.low + drop


class LinfMemo:
    """Which Linf proposals (side, corner, signs) each row has evaluated from its current
    iterate. The margin is a deterministic function of the proposal, so a proposal already
    evaluated from the same iterate, or found identical to it, would lose again: it uses up its
    iteration without a query. Once every proposal of the current side is known, the row jumps
    to the first iteration of the next side (or its end). A row's memo is cleared whenever its
    iterate changes."""

    def __init__(self, rows: int, shape: tuple, side_at: torch.Tensor):
        c, h, w = shape
        self.signs, self.side_at, self.width = 2**c, side_at, w
        self.sides = side_at.unique()  # sorted
        self.side_index = torch.searchsorted(self.sides, side_at)
        self.per_side = h * w * self.signs
        corners = [max(h - s, 1) * max(w - s, 1) for s in self.sides.tolist()]
        self.valid = torch.tensor(corners) * self.signs  # proposals a side can draw
        self.known = torch.zeros(rows, len(self.sides) * self.per_side, dtype=torch.bool)
        change = (side_at[1:] != side_at[:-1]).nonzero().squeeze(1) + 1
        ends = torch.cat([change, torch.tensor([len(side_at)])])
        self.side_end = ends[torch.searchsorted(ends, torch.arange(len(side_at)), right=True)]

    @staticmethod
    def fits(shape: tuple, n_sides: int) -> bool:
        c, h, w = shape
        return n_sides * h * w * 2**c <= MAX_MEMO_KEYS

    def keys(self, u: torch.Tensor, iteration: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Key of each draw ``u`` (..., 2 + C) at ``iteration`` (same leading shape)."""
        side = self.side_at[iteration]
        top = (u[..., 0] * (h - side)).long()
        left = (u[..., 1] * (w - side)).long()
        weights = 2 ** torch.arange(u.shape[-1] - 2)
        bits = ((u[..., 2:] >= 0.5).long() * weights).sum(-1)
        corner = top * self.width + left
        return self.side_index[iteration] * self.per_side + corner * self.signs + bits

    def exhausted(self, rows: torch.Tensor, iteration: torch.Tensor) -> torch.Tensor:
        """Rows whose every proposal of the side at ``iteration`` is known."""
        index = self.side_index[iteration]
        block = self.known.view(len(self.known), len(self.sides), self.per_side)[rows, index]
        return block.sum(1) >= self.valid[index]

    def is_known(self, rows: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return self.known[rows.unsqueeze(1).expand_as(keys), keys]

    def mark(self, rows: torch.Tensor, keys: torch.Tensor) -> None:
        self.known[rows, keys] = True

    def forget(self, rows: torch.Tensor) -> None:
        self.known[rows] = False
