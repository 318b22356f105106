"""The waves of one suite attack (see `robustlab.evaluation.suite`) and the suite's
resumable progress.

Every row is attacked with its own seed (its example's, `
example_seeds`), so its result does not depend on the batch it lands in: a shard of the
examples, or the rest of a wave after a resume, gives each row what the whole run gives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from robustlab.evaluation.grid import PerRowAttack, attack_survivors
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.keep import AdversarialKeeper
from robustlab.evaluation.resume_state import EvaluationState
from robustlab.evaluation.worst_case_result import WorstCaseResult

SECTION = "suite"


@dataclass
class Wave:
    """One wave under way: its attack and number, every row's grid level, the rows it attacks
    (``todo``) and, of those, the ones already done and fooled."""

    attack: str
    number: int
    level: torch.Tensor
    todo: torch.Tensor
    done: torch.Tensor
    fooled: torch.Tensor


@dataclass
class SuiteProgress:
    """Which suite attacks finished and the wave under way, kept in ``state`` (section
    ``"suite"``) with the result, the cost and the kept images, so that a run can resume."""

    state: EvaluationState
    result: WorstCaseResult
    cost: dict[str, dict[str, float]]
    keeper: AdversarialKeeper
    finished: list[str] = field(default_factory=list)
    wave: Wave | None = None
    # per sampled stage (robustlab.evaluation.suite_budget): its sample, then its decision
    budget: dict[str, dict] = field(default_factory=dict)

    def restore(self) -> None:
        """Take over the saved progress, if any."""
        saved = self.state.get(SECTION)
        if saved is None:
            return
        meta, tensors = saved
        self.result.broken_eps = tensors["broken_eps"].double()
        self.result.broken_by = list(meta["broken_by"])
        for name, cost in meta["cost"].items():
            self.cost[name] = dict(cost)
        self.finished = list(meta["finished"])
        self.budget = {name: dict(entry) for name, entry in meta.get("budget", {}).items()}
        for threshold in self.keeper.tensors:
            self.keeper.tensors[threshold] = tensors[f"kept_{threshold!r}"]
        if meta.get("wave"):
            attack, number = meta["wave"]
            parts = [tensors[f"wave_{k}"] for k in ("level", "todo", "done", "fooled")]
            self.wave = Wave(attack, number, parts[0], *(p.bool() for p in parts[1:]))

    def begin(self, wave: Wave) -> None:
        self.wave = wave
        self.save()

    def batch_done(self, rows: torch.Tensor, fooled: torch.Tensor) -> None:
        self.wave.done[rows] = True
        self.wave.fooled[rows] = fooled.cpu()
        self.save()

    def finish(self, name: str) -> None:
        self.finished.append(name)
        self.wave = None
        self.save(force=True)

    def save(self, force: bool = False) -> None:
        """Put the progress into the state and write it (throttled unless ``force``)."""
        if not (force or self.state.due()):
            return
        tensors = {"broken_eps": self.result.broken_eps}
        tensors |= {f"kept_{t!r}": kept for t, kept in self.keeper.tensors.items()}
        meta = {"broken_by": self.result.broken_by, "cost": self.cost, "finished": self.finished}
        meta["budget"] = self.budget
        meta["summary"] = f"suite: {', '.join(self.finished) or 'no attack'} finished"
        if self.wave is not None:
            wave = self.wave
            meta["wave"] = [wave.attack, wave.number]
            for key in ("level", "todo", "done", "fooled"):
                tensors[f"wave_{key}"] = getattr(wave, key).to(torch.int64)
            meta["summary"] += (
                f", {wave.attack} wave {wave.number}: {int(wave.done.sum())} of "
                f"{int(wave.todo.sum())} examples done"
            )
        self.state.put(SECTION, meta, tensors)
        self.state.save(force=True)


def unbroken(result: WorstCaseResult) -> torch.Tensor:
    """The examples an attack can still break: unbroken at the grid's smallest positive eps."""
    positive = [e for e in result.eps if e > 0]
    if not positive:
        return torch.zeros(result.n, dtype=torch.bool)
    return result.broken_eps > min(positive)


def descend(
    run: Runner, make_attack: Callable, progress: SuiteProgress, rows: torch.Tensor | None = None
) -> None:
    """Run an attack (``make_attack(radii, seed=row seeds)``) in waves: first on every unbroken
    example (of ``rows``, when given) at its frontier (the largest grid level at which it is
    unbroken), then one level lower on the examples the last wave broke, until none is left to
    attack. A wave under way in ``progress`` goes on where it stopped. The examples the first
    wave broke are the attack's ``breaks`` in its cost."""
    grid = run.grid
    lowest = int((grid > 0).nonzero()[0]) if (grid > 0).any() else len(grid)
    wave = progress.wave if progress.wave and progress.wave.attack == run.name else None
    if wave is None:
        level = torch.searchsorted(grid, run.result.broken_eps, right=False) - 1
        no = torch.zeros(len(level), dtype=torch.bool)
        todo = level >= lowest if rows is None else (level >= lowest) & rows.cpu()
        wave = Wave(run.name, 1, level, todo, no, no.clone())
    while wave.todo.any():
        progress.begin(wave)
        fooled = run(make_attack, wave.level, wave.todo & ~wave.done, wave.number) | wave.fooled
        run.mark(fooled, wave.level)
        if wave.number == 1:
            run.cost["breaks"] = run.cost.get("breaks", 0) + int(fooled.sum())
        todo = fooled & (wave.level > lowest)  # broken above the lowest level: one level lower
        level, no = torch.where(fooled, wave.level - 1, wave.level), torch.zeros_like(fooled)
        wave = Wave(run.name, wave.number + 1, level, todo, no, no.clone())
    progress.finish(run.name)


@dataclass
class Runner:
    """Runs one suite attack on a subset of the examples, each at its own grid level (one
    radius and one seed per row, attacks built per batch), recording who broke what, its cost,
    its progress and (through the keeper) its images: a later attack overwrites only the rows
    it ran on."""

    judge: Judge
    images: torch.Tensor
    labels: torch.Tensor
    seeds: torch.Tensor
    progress: SuiteProgress
    batch_size: int
    device: torch.device
    name: str
    credit: str | None = None  # what broken_by names (default: ``name``, which keys the cost)

    @property
    def result(self) -> WorstCaseResult:
        return self.progress.result

    @property
    def cost(self) -> dict[str, float]:
        return self.progress.cost.setdefault(
            self.name, {"grad_evals": 0, "forward_evals": 0, "seconds": 0.0}
        )

    @property
    def grid(self) -> torch.Tensor:
        """The grid's eps by level, in the dtype of ``broken_eps`` (float64: keys stay exact)."""
        return torch.tensor(self.result.eps, dtype=self.result.broken_eps.dtype)

    def __call__(self, make_attack, level: torch.Tensor, alive: torch.Tensor, wave: int):
        """The mask of the examples the attack broke among ``alive``, row i at grid level
        ``level[i]``."""
        if not alive.any():
            return alive
        grid, seeds = self.grid, self.seeds
        attack = PerRowAttack(lambda rows: make_attack(grid[level[rows]].float(), seed=seeds[rows]))
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        fooled, _, evals = attack_survivors(
            self.judge,
            attack,
            self.images,
            self.labels,
            alive,
            batch_size=self.batch_size,
            device=self.device,
            desc=f"{self.name} wave {wave}",
            on_batch=partial(self._batch, level=level),
        )
        if cuda:
            torch.cuda.synchronize(self.device)
        cost = self.cost
        cost["seconds"] += time.perf_counter() - started
        cost["grad_evals"] += int(evals)
        cost["forward_evals"] += attack.forward_evals
        return fooled

    def mark(self, fooled: torch.Tensor, level: torch.Tensor) -> None:
        """Record the ``fooled`` rows as broken by this attack at their ``level``'s eps."""
        self.result.broken_eps[fooled] = self.grid[level[fooled]]
        for i in fooled.nonzero().squeeze(1).tolist():
            self.result.broken_by[i] = self.credit or self.name

    def _batch(self, rows, adv, fooled, level) -> None:
        if self.progress.keeper:
            self.progress.keeper.record(rows, adv, fooled, level[rows])
        self.progress.batch_done(rows, fooled)


__all__ = ["Runner", "SuiteProgress", "Wave", "descend", "unbroken"]
