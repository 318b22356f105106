"""Random draws keyed by row: one seed per image instead of one per batch.

An attack seeded with an int draws a batch's random numbers from one generator, so a row's
draws depend on its position in the batch and on the other rows. Seeded with a tensor of one
seed per image, each row draws from its own generator: its draws depend on its seed alone,
whatever batch (or process) it is evaluated in. Sharded and resumed evaluations key every row
by its example index this way (`example_seeds`), so that they match one uninterrupted
process.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from robustlab.errors import ConfigError

Seed = int | torch.Tensor

_MIX = 0x9E3779B97F4A7C15  # the golden-ratio constant of splitmix64: spreads nearby seeds
_MASK = (1 << 63) - 1


class RowGenerators:
    """One CPU generator per row; indexing keeps the same generators (their streams go on)."""

    def __init__(self, generators: list[torch.Generator]):
        self.generators = generators

    @classmethod
    def seeded(cls, seeds: torch.Tensor) -> RowGenerators:
        return cls([torch.Generator().manual_seed(int(s)) for s in seeds.tolist()])

    def __len__(self) -> int:
        return len(self.generators)

    def __getitem__(self, index: torch.Tensor) -> RowGenerators:
        return RowGenerators([self.generators[i] for i in index.cpu().tolist()])

    def draw(self, sample: Callable, shape: tuple[int, ...]) -> torch.Tensor:
        """``sample(shape[1:])`` from each row's generator, stacked (``shape[0]`` rows)."""
        if shape[0] != len(self):
            raise ValueError(f"{len(self)} row generators cannot draw {shape[0]} rows")
        if not self.generators:
            return torch.empty(shape)
        return torch.stack([sample(shape[1:], generator=g) for g in self.generators])


Generator = torch.Generator | RowGenerators


def check_seed(seed: Seed) -> Seed:
    """``seed`` as an int, or as a 1-d int64 tensor of one seed per image (on the CPU)."""
    if isinstance(seed, torch.Tensor) and seed.ndim == 1 and not seed.is_floating_point():
        return seed.detach().cpu().long()
    if isinstance(seed, int | torch.Tensor) and not isinstance(seed, bool):
        try:
            return int(seed)
        except (TypeError, RuntimeError, ValueError):
            pass
    raise ConfigError(f"an attack seed is an int or one int per image (1-d tensor), got {seed!r}")


def make_generator(seed: Seed) -> Generator:
    """A generator for ``seed``: one torch generator for an int, one per row for a tensor."""
    if isinstance(seed, torch.Tensor) and seed.ndim == 1:
        return RowGenerators.seeded(seed)
    return torch.Generator().manual_seed(int(seed))


def restart_generators(seed: Seed, count: int) -> list[Generator]:
    """``count`` independent generators derived from ``seed`` (one per restart), each row's
    derived from its own seed when ``seed`` is a tensor."""
    if isinstance(seed, torch.Tensor) and seed.ndim == 1:
        per_row = [restart_generators(int(s), count) for s in seed.tolist()]
        return [RowGenerators([row[k] for row in per_row]) for k in range(count)]
    seeds = torch.randint(2**62, (count,), generator=torch.Generator().manual_seed(int(seed)))
    return [torch.Generator().manual_seed(int(s)) for s in seeds.tolist()]


def rand(shape: tuple[int, ...], generator: Generator) -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape`` (CPU) from ``generator`` (see `make_generator`)."""
    if isinstance(generator, RowGenerators):
        return generator.draw(torch.rand, tuple(shape))
    return torch.rand(shape, generator=generator)


def randn(shape: tuple[int, ...], generator: Generator) -> torch.Tensor:
    """Standard normal draws of ``shape`` (CPU) from ``generator``."""
    if isinstance(generator, RowGenerators):
        return generator.draw(torch.randn, tuple(shape))
    return torch.randn(shape, generator=generator)


def rows_of(generator: Generator, index: torch.Tensor) -> Generator:
    """The generator of the rows ``index``: the same shared generator, or those rows' own."""
    return generator[index] if isinstance(generator, RowGenerators) else generator


def keyed_start(attack, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``attack.start`` (a start drawn from the global random state, e.g. PGD's) of each row
    under the global seed ``seeds[i]``: a row's start depends on its seed alone. The caller's
    random state is left as it was."""
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        rows = []
        for i, seed in enumerate(seeds.tolist()):
            torch.manual_seed(seed)
            rows.append(attack.start(images[i : i + 1]))
    return torch.cat(rows) if rows else attack.start(images)


def example_seeds(seed: int, example_ids: torch.Tensor) -> torch.Tensor:
    """One seed per example, from the evaluation's ``seed`` and the examples' indices in the
    evaluated set (int64, deterministic, distinct for distinct indices)."""
    mixed = [((int(seed) * _MIX) ^ (int(i) * 2 + 1) * _MIX) & _MASK for i in example_ids.tolist()]
    return torch.tensor(mixed, dtype=torch.int64)


__all__ = [
    "RowGenerators",
    "check_seed",
    "example_seeds",
    "keyed_start",
    "make_generator",
    "rand",
    "randn",
    "restart_generators",
    "rows_of",
]
