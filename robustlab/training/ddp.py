"""What the fit loop does differently under DDP: wrap the model, split each global batch, sum.

With one process every function here is the identity, so a single-process run is exactly the
run it was before DDP existed. With N processes (torchrun, SLURM) every rank iterates the same
global batches (same order, same augmentation: the loader is a function of seed and epoch),
trains on its contiguous share of the rows and weights its loss by its share, so the averaged
gradient is the one-process gradient for any split: uneven shards, and a last batch with fewer
rows than processes, where a rank with no rows runs the step on an empty batch (joining every
collective: the BatchNorm sync, DDP's gradient all-reduce) with a loss weight of zero.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from robustlab.distributed import gather_objects, rank, shard_range, world_size
from robustlab.errors import InputError
from robustlab.training.global_batch import GlobalBatch, rank_rows
from robustlab.training.sync_batchnorm import (
    restore_batchnorm,
    swap_batchnorm,
    synchronized_batchnorm,
)


def wrap_model(
    model: nn.Module, sync_batchnorm: bool = True
) -> tuple[nn.Module, Callable[[], None]]:
    """The module a training step calls and a function that undoes the wrapping.

    Under DDP: BatchNorm layers become synchronised ones (``sync_batchnorm``; torch's
    SyncBatchNorm on CUDA, `GlobalBatchNorm` on the CPU) and the model is wrapped in
    ``DistributedDataParallel`` (which averages the gradients). The undo puts the original
    BatchNorm classes back, with the trained parameters and statistics; the model itself is
    updated in place throughout, so ``model`` is the trained model afterwards.
    """
    if world_size() == 1:
        return model, lambda: None
    device = next(model.parameters()).device
    replaced = swap_batchnorm(model, synchronized_batchnorm(device)) if sync_batchnorm else {}
    wrapped = DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        **_buffer_sync(not sync_batchnorm),
    )
    return wrapped, lambda: restore_batchnorm(model, replaced)


def _buffer_sync(every_forward: bool) -> dict[str, bool]:
    """DDP's option for broadcasting rank 0's buffers before every forward pass.

    Synchronised BatchNorm updates the running statistics alike on every rank, so there it
    would be one more collective per pass for nothing. torch 2.13 renamed the option.
    """
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return {"forward_sync_buffers": every_forward}
    return {"broadcast_buffers": every_forward}


def bare_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (the model itself otherwise).

    Attacks run on it: DDP expects each forward pass through the wrapper to be followed by a
    backward pass into the parameters, and an attack's passes differentiate w.r.t. the input
    only.
    """
    return model.module if isinstance(model, DistributedDataParallel) else model


@dataclass
class Shard:
    """This rank's part of one global batch and the weight of its loss."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: range | None = None  # None: the whole batch, one process
    weight: float = 1.0  # (rows here / rows in the global batch) * world size; 0: no rows

    @contextmanager
    def active(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's (images, labels); per-example random draws inside the block are made
        for the global batch (`robustlab.training.global_batch`)."""
        if self.rows is None:
            yield self.images, self.labels
            return
        with rank_rows(GlobalBatch(self.images, self.rows)) as mine:
            yield mine, self.labels[self.rows.start : self.rows.stop]

    @property
    def empty(self) -> bool:
        """Whether this rank holds no rows of the batch (a last batch smaller than the group)."""
        return self.rows is not None and len(self.rows) == 0

    def weighted(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate: DDP averages over ranks, so mean losses are weighted by
        the share of rows (times the world size) to add up to the global batch mean.

        An empty shard's mean loss is NaN (0 / 0), but every tensor between it and the
        parameters has no rows, so its backward pass gives exact zero gradients: the rank
        joins the collectives of the backward pass and adds nothing to the sum.
        """
        return loss if self.rows is None else loss * self.weight


def shard_batch(images: torch.Tensor, labels: torch.Tensor) -> Shard:
    """This rank's `Shard` of a global batch (the whole batch in one process); any split,
    a shard without rows included."""
    size = world_size()
    if size == 1:
        return Shard(images, labels)
    if len(labels) == 0:
        raise InputError("a global batch without rows: the loader yielded an empty batch")
    rows = shard_range(len(labels), rank(), size)
    return Shard(images, labels, rows, len(rows) * size / len(labels))


def summed(values: list[float]) -> list[float]:
    """Each value summed over the ranks (the values themselves in one process)."""
    if world_size() == 1:
        return values
    return [sum(column) for column in zip(*gather_objects(values), strict=True)]
