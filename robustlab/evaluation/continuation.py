"""Eps continuation: one iterative-attack stream over a whole eps grid.

The default schedule of `robust_accuracy` for native PGD (any continuable
`IterativeAttack`, driven through its public ``start``,
``gradient``, ``step`` and ``project`` only). Every example starts at the
smallest eps with the attack's own budget (random start, ``steps`` steps of size ``alpha``).
An example that is fooled leaves, with that eps as its first fooled eps. One that survives
moves up to the next eps: its perturbation is stretched to the new radius (the direction that
survived the smaller ball, now on the larger boundary) and attacked for ``continuation_steps``
more steps, with the step size scaled up so that the short budget still covers the ball
(`madry_step_size` applied to the steps actually taken); and
so on up the grid. Survivors are attacked at every eps, as in the eps-by-eps schedule, but each
larger eps resumes from the strongest point found so far instead of starting over from noise.

Examples at different eps share every forward+backward pass: each row carries its own radius
and step size. Up to ``POOL_BATCHES`` batches of examples are held at once, and every pass
serves the ``batch_size`` rows furthest behind (lowest eps, fewest steps). An example that
survives many eps is a long chain of steps that cannot run in parallel; serving the furthest
behind first keeps those chains moving while the batches are full, instead of leaving a few of
them to run alone in nearly empty batches at the end.

Only an attack whose whole algorithm is that loop and whose rows are independent can continue
(``attack.continuable``: PGD in eval mode with one restart and early stop). APGD is not: its
momentum, per-example step size and checkpoint schedule are fitted to one run of ``steps``
iterations from a random start, so it is run afresh at each eps on the survivors (the
``"full"`` schedule), as are all other attacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from robustlab.attacks.base import is_success
from robustlab.attacks.iterative import IterativeAttack
from robustlab.attacks.row_random import keyed_start
from robustlab.errors import ConfigError
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.keep import AdversarialKeeper
from robustlab.progress import progress_bar

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
    """Whether one attack per eps (ascending) can be run as a single continuation stream: all
    continuable iterative attacks of one type that differ only in eps and step size."""
    if not attacks or not all(isinstance(a, IterativeAttack) and a.continuable for a in attacks):
        return False
    first = attacks[0]
    same = all(
        type(a) is type(first)
        and a.model is first.model
        and a.norm == first.norm
        and a.loss == first.loss
        and a.targeted == first.targeted
        and a.steps == first.steps
        and a.random_start == first.random_start
        for a in attacks
    )
    return same and first.steps >= 1


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


def _level_tables(
    attacks: Sequence[IterativeAttack], continuation_steps: int, device: torch.device
) -> _Levels:
    """Per eps: radius, step size, step budget; and the first eps > 0 (where streams start).

    The first attacked eps gets the attack's own steps and step size. A larger eps gets
    ``continuation_steps`` steps with the step size stretched by ``steps / continuation_steps``,
    so that the shorter budget still covers the distance the full one would (``madry_step_size``
    applied to the steps actually taken): with the small step of
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
    attack: IterativeAttack,
    grad: torch.Tensor,
    fooled: torch.Tensor,
    *,
    tables: _Levels,
    keeper: AdversarialKeeper | None = None,
) -> int:
    """Update the attacked ``rows``: drop the finished, move the exhausted up an eps, step the
    rest. Returns how many examples finished. ``keeper`` records the rows that leave their eps
    (fooled, or survivors with their iterate before the stretch to the next eps)."""
    level, steps = pool.level[rows], pool.steps[rows]
    # A row that used its budget without fooling moves up to the next eps.
    moving = ~fooled & (steps >= tables.budget[level])
    done = fooled | (moving & (level + 1 >= len(tables.eps)))
    if keeper:
        leaving = fooled | moving
        index, adv = pool.index[rows[leaving]], pool.adv[rows[leaving]]
        keeper.record(index, adv, fooled[leaving], level[leaving])
    go = ~done
    if go.any():
        rows_state = _RowsState(moving=moving[go], steps=steps[go], level=level[go])
        _step_rows(pool, rows[go], attack, grad[go], rows_state, tables=tables)
    pool.drop(rows[done])
    return int(done.sum())


@dataclass
class _RowsState:
    """Per attacked row: whether it moves up an eps, its steps taken there and its eps level."""

    moving: torch.Tensor
    steps: torch.Tensor
    level: torch.Tensor


def _step_rows(
    pool: _Pool,
    kept: torch.Tensor,
    attack: IterativeAttack,
    grad: torch.Tensor,
    rows: _RowsState,
    *,
    tables: _Levels,
) -> None:
    """One step for the ``kept`` rows, or the move up to the next eps for the ``moving``."""
    moving, steps, level = rows.moving, rows.steps, rows.level
    x0, adv = pool.x0[kept], pool.adv[kept]
    new_adv = attack.step(adv, x0, grad, tables.eps[level], tables.alpha[level])
    if moving.any():
        # Moving up, the perturbation that survived the smaller ball is stretched to the new
        # radius (same direction, new boundary) and attacked from there.
        old, new = tables.eps[level[moving]], tables.eps[level[moving] + 1]
        ratio = (new / old.clamp_min(1e-12)).view(-1, *[1] * (adv.ndim - 1))
        x0_moving = x0[moving]
        new_adv[moving] = attack.project(
            x0_moving + (adv[moving] - x0_moving) * ratio, x0_moving, new
        )
    pool.adv[kept] = new_adv
    pool.level[kept] = level + moving.long()
    pool.steps[kept] = torch.where(moving, torch.zeros_like(steps), steps + 1)


def eps_continuation(
    attacks: Sequence[IterativeAttack],
    images: torch.Tensor,
    labels: torch.Tensor,
    alive: torch.Tensor,
    judge: Judge,
    *,
    batch_size: int,
    device: torch.device,
    continuation_steps: int | None = None,
    desc: str = "PGD",
    keeper: AdversarialKeeper | None = None,
    row_seeds: torch.Tensor | None = None,
) -> ContinuationResult:
    """Run ``attacks`` (one per eps, ascending eps) as one stream over the ``alive`` examples.

    Args:
        attacks: one continuable attack per eps, ascending.
        images: the evaluated images; they stay where they are (CPU is fine) and rows move to
            ``device`` as they enter the batch.
        labels: their labels.
        alive: the rows to attack (bool, (N,)).
        judge: decides every break: a row the attack's forward calls fooled leaves only when
            the judge confirms it (else it is attacked on), and a randomized model's row is
            judged again as it leaves an eps unbroken.
        batch_size: rows per forward+backward.
        device: where to run.
        continuation_steps: steps at each eps after the first (default: a quarter of the
            attack's steps, at least 2).
        desc: the progress bar's label.
        keeper: keeps adversarial examples as rows leave an eps (its grid: the attacks' eps),
            at no extra pass.
        row_seeds: one seed per image: each example's random start is drawn under its own
            seed (`robustlab.attacks.row_random.keyed_start`), so that it does not depend on
            which examples share its stream (a shard, a resumed run); default: the global
            random state.
    """
    if not can_continue(attacks):
        raise ConfigError("eps continuation needs one continuable attack (e.g. PGD) per eps")
    if continuation_steps is None:
        continuation_steps = default_continuation_steps(attacks[0].steps)
    if not isinstance(continuation_steps, int) or continuation_steps < 1:
        raise ConfigError(f"continuation_steps must be an integer >= 1, got {continuation_steps!r}")
    tables = _level_tables(attacks, continuation_steps, device)
    waiting = alive.cpu().nonzero().squeeze(1)
    if tables.start == len(attacks):
        waiting = waiting[:0]
    attack = attacks[min(tables.start, len(attacks) - 1)]
    stream = _Stream(attack, images, tables, batch_size=batch_size, device=device, keeper=keeper)
    stream.row_seeds, stream.judge = row_seeds, judge
    with stream.attack.model_context(), progress_bar(desc, len(waiting), unit="ex") as bar:
        taken = 0
        while taken < len(waiting) or len(stream.pool):
            taken = stream.fill(images, labels, waiting, taken)
            bar.update(stream.serve())
    return ContinuationResult(stream.first_fooled(len(images)), stream.evals_per_level())


class _Stream:
    """The pool under attack and its bookkeeping: who was fooled at which eps, at what cost."""

    def __init__(
        self, attack: IterativeAttack, images, tables: _Levels, *, batch_size: int, device, keeper
    ):
        self.attack, self.tables, self.batch_size, self.device = attack, tables, batch_size, device
        self.keeper, self.row_seeds, self.judge = keeper, None, None
        self.pool = _Pool(images, device, tables.start)
        self.max_steps = int(tables.budget.max()) if len(tables.budget) else 1
        self.evals = torch.zeros(len(tables.eps), dtype=torch.long, device=device)
        self.fooled_index: list[torch.Tensor] = []
        self.fooled_level: list[torch.Tensor] = []

    def fill(self, images, labels, waiting: torch.Tensor, taken: int) -> int:
        """Top the pool up from ``waiting[taken:]``; returns the new ``taken``."""
        room = POOL_BATCHES * self.batch_size - len(self.pool)
        if room <= 0 or taken >= len(waiting):
            return taken
        new = waiting[taken : taken + room]
        x0 = images[new].to(self.device)
        seeds = None if self.row_seeds is None else self.row_seeds[new]
        start = self.attack.start(x0) if seeds is None else keyed_start(self.attack, x0, seeds)
        self.pool.add(new.to(self.device), x0, start, labels[new].to(self.device))
        return taken + len(new)

    def serve(self) -> int:
        """One forward+backward for the rows furthest behind; returns how many finished."""
        pool, attack = self.pool, self.attack
        rows = pool.most_behind(self.batch_size, self.max_steps)
        adv, y, level = pool.adv[rows], pool.labels[rows], pool.level[rows]
        grad, logits = attack.gradient(adv, pool.x0[rows], y)
        self.evals += torch.bincount(level, minlength=len(self.evals))
        claimed = is_success(logits, y, attack.targeted)
        fooled = self._judged(adv, y, claimed)
        self.fooled_index.append(pool.index[rows][fooled].cpu())
        self.fooled_level.append(level[fooled].cpu())
        return _advance(pool, rows, attack, grad, fooled, tables=self.tables, keeper=self.keeper)

    def _judged(self, adv, labels, claimed) -> torch.Tensor:
        """The judge's verdict on the served rows: the attack's claims where its forward is the
        judge's own, else each claim confirmed (bf16 crafting: the fp32 model decides). A row
        the judge does not confirm goes on being attacked."""
        attack = self.attack
        if attack.targeted or self.judge.accepts_claims_of(attack.model):
            return claimed  # a targeted claim is about its target, not the label
        return self.judge.confirm(adv, labels, claimed)

    def first_fooled(self, n: int) -> torch.Tensor:
        first = torch.full((n,), len(self.evals), dtype=torch.long)
        if self.fooled_index:
            first[torch.cat(self.fooled_index)] = torch.cat(self.fooled_level)
        return first

    def evals_per_level(self) -> list[int]:
        return [int(e) for e in self.evals.cpu()]
