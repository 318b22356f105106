"""Eps continuation: one PGD stream over a whole eps grid.

The default schedule of :func:`robust_accuracy` for native PGD. Every example starts at the
smallest eps with the attack's own budget (random start, ``steps`` steps of size ``alpha``).
An example that is fooled leaves, with that eps as its first fooled eps. One that survives
moves up to the next eps: its perturbation is stretched to the new radius (the direction that
survived the smaller ball, now on the larger boundary) and attacked for ``continuation_steps``
more steps, with the step size scaled up so that the short budget still covers the ball; and
so on up the grid. Survivors are attacked at every eps, as in the eps-by-eps schedule, but each
larger eps resumes from the strongest point found so far instead of starting over from noise.

Examples at different eps share every forward+backward pass: each row carries its own radius
and step size. Up to ``POOL_BATCHES`` batches of examples are held at once, and every pass
serves the ``batch_size`` rows furthest behind (lowest eps, fewest steps). An example that
survives many eps is a long chain of steps that cannot run in parallel; serving the furthest
behind first keeps those chains moving while the batches are full, instead of leaving a few of
them to run alone in nearly empty batches at the end.

Only PGD can continue this way, and only when its result does not depend on the batch (eval
mode, one restart, early stop); other attacks are evaluated eps by eps
(:func:`robustlab.attacks.evaluation.robust_accuracy`'s ``schedule="full"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from robustlab.attacks.base import is_success
from robustlab.attacks.pgd import PGD
from robustlab.errors import ConfigError
from robustlab.models.runtime import model_context
from robustlab.runtime import progress_bar

# Examples held under attack at once, in batches: more than one lets the scheduler choose whom
# to serve, a bound keeps the memory of the images held on the device in check.
POOL_BATCHES = 4


@dataclass
class ContinuationResult:
    """``first_fooled[i]``: grid index of the smallest eps that fooled example i (``len(grid)``
    when none did or it was not attacked); ``grad_evals[k]``: evaluations spent at eps k."""

    first_fooled: torch.Tensor
    grad_evals: list[int]


def can_continue(attacks: Sequence[object]) -> bool:
    """Whether one PGD per eps (ascending) can be run as a single continuation stream."""
    if not attacks or not all(type(a) is PGD for a in attacks):
        return False
    first = attacks[0]
    same = all(
        a.model is first.model
        and a.norm == first.norm
        and a.loss == first.loss
        and a.targeted == first.targeted
        and a.steps == first.steps
        and a.random_start == first.random_start
        for a in attacks
    )
    batch_independent = all(
        a.restarts == 1 and a.early_stop and a.model_mode == "eval" for a in attacks
    )
    return same and batch_independent and first.steps >= 1


class _Pool:
    """The examples under attack: which one, at which eps, how many steps taken there."""

    def __init__(self, images: torch.Tensor, device: torch.device, start_level: int):
        empty = torch.zeros(0, dtype=torch.long, device=device)
        self.start_level = start_level
        self.index, self.level, self.steps = empty, empty.clone(), empty.clone()
        self.x0 = images.new_zeros((0, *images.shape[1:]), device=device)
        self.adv, self.labels = self.x0.clone(), empty.clone()

    def __len__(self) -> int:
        return len(self.index)

    def add(self, index: torch.Tensor, x0: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor):
        zeros = torch.zeros_like(index)
        self.index = torch.cat([self.index, index])
        self.level = torch.cat([self.level, zeros + self.start_level])
        self.steps = torch.cat([self.steps, zeros])
        self.x0, self.adv = torch.cat([self.x0, x0]), torch.cat([self.adv, adv])
        self.labels = torch.cat([self.labels, labels])

    def drop(self, rows: torch.Tensor) -> None:
        keep = torch.ones(len(self), dtype=torch.bool, device=self.index.device)
        keep[rows] = False
        for name in ("index", "level", "steps", "x0", "adv", "labels"):
            setattr(self, name, getattr(self, name)[keep])

    def most_behind(self, count: int, max_steps: int) -> torch.Tensor:
        """The ``count`` rows with the longest way possibly still ahead: lowest eps first, then
        fewest steps taken there."""
        key = self.level * (max_steps + 1) + self.steps
        return key.argsort(stable=True)[:count]


def default_continuation_steps(steps: int) -> int:
    """Steps per larger eps: a quarter of the attack's budget, and at least two, so that one
    step is never all a larger eps gets."""
    return max(2, steps // 4)


@dataclass
class _Levels:
    eps: torch.Tensor
    alpha: torch.Tensor
    budget: torch.Tensor
    start: int


def _level_tables(attacks: Sequence[PGD], continuation_steps: int, device: torch.device) -> _Levels:
    """Per eps: radius, step size, step budget; and the first eps > 0 (where streams start).

    The first attacked eps gets the attack's own steps and step size. A larger eps gets
    ``continuation_steps`` steps with the step size stretched by ``steps / continuation_steps``,
    so that the shorter budget still covers the distance the full one would (Madry et al.'s
    ``alpha = 2.5 eps / steps`` rule applied to the steps actually taken): with the small step of
    a 20-step budget, 5 steps barely reach the new boundary and the continuation is weaker than
    a fresh attack.
    """
    first = attacks[0]
    eps = torch.tensor([a.eps for a in attacks], device=device)
    start = int((eps <= 0).sum())  # eps = 0 is the clean accuracy: nothing to attack
    alpha = torch.tensor([a.alpha for a in attacks], device=device)
    budget = torch.full((len(attacks),), continuation_steps, dtype=torch.long, device=device)
    alpha[start + 1 :] *= first.steps / continuation_steps
    if start < len(attacks):
        budget[start] = first.steps
    return _Levels(eps, alpha, budget, start)


def _advance(
    pool: _Pool,
    rows: torch.Tensor,
    attack: PGD,
    grad: torch.Tensor,
    fooled: torch.Tensor,
    tables: _Levels,
) -> int:
    """Update the attacked ``rows``: drop the finished, move the exhausted up an eps, step the
    rest. Returns how many examples finished."""
    level, steps = pool.level[rows], pool.steps[rows]
    # A row that used its budget without fooling moves up to the next eps.
    moving = ~fooled & (steps >= tables.budget[level])
    done = fooled | (moving & (level + 1 >= len(tables.eps)))
    go = ~done
    if go.any():
        _step_rows(pool, rows[go], attack, grad[go], moving[go], steps[go], level[go], tables)
    pool.drop(rows[done])
    return int(done.sum())


def _step_rows(
    pool: _Pool,
    kept: torch.Tensor,
    attack: PGD,
    grad: torch.Tensor,
    moving: torch.Tensor,
    steps: torch.Tensor,
    level: torch.Tensor,
    tables: _Levels,
) -> None:
    """One PGD step for the ``kept`` rows, or the move up to the next eps for the ``moving``."""
    x0, adv = pool.x0[kept], pool.adv[kept]
    new_adv = attack._step(adv, x0, grad, tables.eps[level], tables.alpha[level])
    if moving.any():
        # Moving up, the perturbation that survived the smaller ball is stretched to the new
        # radius (same direction, new boundary) and attacked from there.
        old, new = tables.eps[level[moving]], tables.eps[level[moving] + 1]
        ratio = (new / old.clamp_min(1e-12)).view(-1, *[1] * (adv.ndim - 1))
        x0_moving = x0[moving]
        new_adv[moving] = attack._project(
            x0_moving + (adv[moving] - x0_moving) * ratio, x0_moving, new
        )
    pool.adv[kept] = new_adv
    pool.level[kept] = level + moving.long()
    pool.steps[kept] = torch.where(moving, torch.zeros_like(steps), steps + 1)


def pgd_continuation(
    attacks: Sequence[PGD],
    images: torch.Tensor,
    labels: torch.Tensor,
    alive: torch.Tensor,
    batch_size: int,
    device: torch.device,
    continuation_steps: int | None = None,
    desc: str = "PGD",
) -> ContinuationResult:
    """Run ``attacks`` (one PGD per eps, ascending eps) as one stream over the ``alive`` examples.

    ``continuation_steps``: steps at each eps after the first (default: a quarter of the
    attack's steps, at least 2).

    ``images``/``labels`` stay where they are (CPU is fine); rows move to ``device`` as they
    enter the batch. See the module docstring for the schedule.
    """
    if not can_continue(attacks):
        raise ConfigError("eps continuation needs one eval-mode, single-restart PGD per eps")
    if continuation_steps is None:
        continuation_steps = default_continuation_steps(attacks[0].steps)
    if not isinstance(continuation_steps, int) or continuation_steps < 1:
        raise ConfigError(f"continuation_steps must be an integer >= 1, got {continuation_steps!r}")
    levels = len(attacks)
    tables = _level_tables(attacks, continuation_steps, device)
    start = tables.start
    first_fooled = torch.full((len(images),), levels, dtype=torch.long)
    evals = torch.zeros(levels, dtype=torch.long, device=device)
    waiting = alive.cpu().nonzero().squeeze(1)
    if start == levels:
        waiting = waiting[:0]
    attack = attacks[min(start, levels - 1)]
    pool = _Pool(images, device, start)
    max_steps = max(attack.steps, continuation_steps)
    taken = 0
    bar = progress_bar(desc, total=len(waiting), unit="ex")
    with model_context(attack.model, "eval"), bar:
        while taken < len(waiting) or len(pool):
            if len(pool) < POOL_BATCHES * batch_size and taken < len(waiting):
                new = waiting[taken : taken + POOL_BATCHES * batch_size - len(pool)]
                taken += len(new)
                x0 = images[new].to(device)
                pool.add(new.to(device), x0, attack._start(x0), labels[new].to(device))
            rows = pool.most_behind(batch_size, max_steps)
            adv, y, level = pool.adv[rows], pool.labels[rows], pool.level[rows]
            grad, logits = attack._input_grad(adv, pool.x0[rows], y)
            if logits is None:
                logits = attack._logits(adv)
            evals += torch.bincount(level, minlength=levels)
            fooled = is_success(logits, y, attack.targeted)
            first_fooled[pool.index[rows][fooled].cpu()] = level[fooled].cpu()
            bar.update(_advance(pool, rows, attack, grad, fooled, tables))
    return ContinuationResult(first_fooled, [int(e) for e in evals.cpu()])
