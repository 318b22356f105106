"""An in-memory loader: the whole data set lives on the device, batches are index gathers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robustlab.devices import resolve_device
from robustlab.errors import ConfigError


@dataclass(frozen=True)
class Augmentation:
    """Random crop with zero padding and/or random horizontal flip, done on batched tensors."""

    crop_padding: int = 0
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ConfigError(
                f"crop_padding must be a non-negative integer, got {self.crop_padding!r}"
            )

    @property
    def is_identity(self) -> bool:
        """True when applying it changes nothing (and draws no random numbers)."""
        return self.crop_padding == 0 and not self.horizontal_flip

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch [N, C, H, W]; randomness comes from the CPU ``generator``."""
        if self.crop_padding:
            images = self._random_crop(images, generator)
        if self.horizontal_flip:
            flip = torch.rand(len(images), generator=generator) < 0.5
            flip = flip.to(images.device).view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(-1), images)
        return images

    def _random_crop(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = images.shape
        pad = self.crop_padding
        padded = F.pad(images, (pad, pad, pad, pad))
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(images.device)
        rows = offsets[0].view(n, 1) + torch.arange(h, device=images.device)
        cols = offsets[1].view(n, 1) + torch.arange(w, device=images.device)
        # One gather for the whole batch: example i reads rows[i] x cols[i] of its padded image.
        return padded[
            torch.arange(n, device=images.device).view(n, 1, 1, 1),
            torch.arange(c, device=images.device).view(1, c, 1, 1),
            rows.view(n, 1, h, 1),
            cols.view(n, 1, 1, w),
        ]


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed that depends only on (seed, epoch)."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(epoch)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class TensorLoader:
    """Yields ``(x, y)`` batches of tensors that were moved to ``device`` once.

    The order and the augmentation of an epoch are a pure function of ``(seed, epoch)``:
    ``set_epoch(e)`` picks the epoch of the next iteration, so a resumed run sees the same
    batches. Without ``set_epoch``, each new iteration moves on to the next epoch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        augment: Augmentation | None = None,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ) -> None:
        if len(images) != len(labels):
            raise ConfigError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self.images = images.to(self.device, dtype=torch.float32)
        self.labels = labels.to(self.device, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.augment = augment
        self.drop_last = drop_last
        self.epoch = -1  # the epoch of the latest iteration
        self._next_epoch = 0

    @property
    def num_examples(self) -> int:
        """Number of examples in the data set (not the number of batches)."""
        return len(self.labels)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration replay epoch ``epoch`` exactly."""
        self._next_epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # The epoch is claimed here, not at the first next(), so iter() order is what counts.
        self.epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        generator = torch.Generator(device="cpu").manual_seed(epoch_seed(self.seed, self.epoch))
        if self.shuffle:
            order = torch.randperm(self.num_examples, generator=generator)
        else:
            order = torch.arange(self.num_examples)
        return self._batches(order.to(self.device), generator)

    def _batches(
        self, order: torch.Tensor, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index]
            if self.augment is not None and not self.augment.is_identity:
                images = self.augment(images, generator)
            yield images, self.labels[index]
