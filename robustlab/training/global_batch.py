"""Random numbers of a training step that do not depend on how the batch is split across ranks.

Under DDP each rank trains on its rows of the global batch. Random draws made per step (PGD's
random start, Gaussian noise, TRADES' start) are made for the WHOLE global batch, from torch's
global generator, and each rank keeps its rows. Every rank therefore consumes the generator
exactly as a single process does, and example i of a step gets the numbers a single process
would give it: they depend on the seed, the epoch and the example's place in the global batch,
never on the rank or the number of processes. In one process nothing here changes a draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GlobalBatch:
    """The global batch of the current step and the rows this rank trains on."""

    images: torch.Tensor
    rows: range

    @property
    def size(self) -> int:
        """Rows of the global batch."""
        return len(self.images)


_CURRENT: ContextVar[GlobalBatch | None] = ContextVar("robustlab_global_batch", default=None)


@contextmanager
def rank_rows(batch: GlobalBatch) -> Iterator[torch.Tensor]:
    """Within the block, per-example draws are made for ``batch`` and sliced to ``batch.rows``;
    yields this rank's images."""
    token = _CURRENT.set(batch)
    try:
        yield batch.images[batch.rows.start : batch.rows.stop]
    finally:
        _CURRENT.reset(token)


def draw_rows(images: torch.Tensor, draw: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``draw(images)`` where ``draw`` uses torch's generator per example (``torch.randn_like``,
    an attack's random start); inside `rank_rows` it is drawn for the global batch and
    this rank's rows are returned, so the result does not depend on the split."""
    batch = _CURRENT.get()
    if batch is None:
        return draw(images)
    if len(images) != len(batch.rows):
        raise RuntimeError(
            f"a per-example draw for {len(images)} rows inside a global batch step whose shard "
            f"has {len(batch.rows)}: draw for the step's own images"
        )
    # the draw sees the global batch: this rank's rows are its own images (on their device)
    full = batch.images.to(images.device, images.dtype).clone()
    full[batch.rows.start : batch.rows.stop] = images
    return draw(full)[batch.rows.start : batch.rows.stop]
