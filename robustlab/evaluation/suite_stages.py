"""Running the suite's stages (`robustlab.evaluation.suite_budget`) in waves, sampled stages
included: sample, decide, then every other survivor only when the decision says so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from robustlab.attacks.row_random import example_seeds
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.suite_budget import (
    Stage,
    budget_record,
    keyed_sample,
    total_over_processes,
)
from robustlab.evaluation.suite_waves import Runner, SuiteProgress, descend, unbroken

REST = "_rest"  # suffix of a sampled stage's pass over the survivors outside its sample


@dataclass
class StageRun:
    """What every stage of one suite run shares: the judge, the evaluated set and its ids, the
    suite's seed, its progress, batching, the crafting model and ``attack(stage, model, eps,
    seed=...)`` that builds a stage's attack."""

    judge: Judge
    images: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor
    seed: int
    progress: SuiteProgress
    batch_size: int
    device: torch.device
    crafting: nn.Module
    attack: Callable

    def descend(self, stage: Stage, name: str, rows: torch.Tensor | None = None) -> None:
        """Run ``stage``'s attack under the progress key ``name`` on ``rows`` (default: every
        unbroken example), each row with its own seed (the same in every stage)."""
        if name in self.progress.finished:
            return
        seeds = example_seeds(self.seed, self.ids)
        run = Runner(
            judge=self.judge,
            images=self.images,
            labels=self.labels,
            seeds=seeds,
            progress=self.progress,
            batch_size=self.batch_size,
            device=self.device,
            name=name,
            credit=stage.attack,
        )
        descend(run, partial(self.attack, stage, self.crafting), self.progress, rows)


def run_stage(stage: Stage, run: StageRun) -> None:
    """Run one stage; a sampled one on its sample first, then on the other survivors only when
    the sample or its trigger broke an example (the decision kept in ``progress.budget``)."""
    progress = run.progress
    if not stage.sample:
        if not _skipped(stage, progress):
            run.descend(stage, stage.name)
        return
    entry = progress.budget.get(stage.name)
    if entry is None:  # the sample is drawn once, from the survivors at the stage's start
        sample, survivors = keyed_sample(
            unbroken(progress.result), run.ids, seed=run.seed, stage=stage.name, size=stage.sample
        )
        entry = {"survivors": survivors, "rows": sample.nonzero().squeeze(1).tolist()}
        progress.budget[stage.name] = entry
        progress.save(force=True)
    sample = torch.zeros(len(run.labels), dtype=torch.bool)
    sample[torch.tensor(entry["rows"], dtype=torch.long)] = True
    run.descend(stage, stage.name, sample)
    if "escalated" not in entry:
        entry |= _decision(stage, progress, len(entry["rows"]), entry["survivors"])
        progress.save(force=True)
    if entry["escalated"]:
        run.descend(stage, stage.name + REST, unbroken(progress.result) & ~sample)
        progress.save(force=True)


def _skipped(stage: Stage, progress: SuiteProgress) -> bool:
    """Whether a reduced stage is left out: the whole set has no more survivors than the
    sampled full budget after it takes (decided once, kept for a resumed run)."""
    if not stage.skip_at_most or stage.name in progress.finished:
        return False
    decision = progress.budget.setdefault(stage.name, {})
    if "skipped" not in decision:
        survivors = total_over_processes(int(unbroken(progress.result).sum()))
        decision["skipped"] = survivors <= stage.skip_at_most
        progress.save(force=True)
    if decision["skipped"]:
        progress.cost.pop(stage.name, None)
        progress.finish(stage.name)
    return decision["skipped"]


def _decision(stage: Stage, progress: SuiteProgress, rows: int, survivors: int) -> dict:
    """The sampled stage's record, from the whole set's sample, its breaks and the trigger's."""
    breaks = progress.cost.get(stage.name, {}).get("breaks", 0)
    triggered = progress.cost.get(stage.trigger, {}).get("breaks", 0) if stage.trigger else 0
    return budget_record(
        stage,
        survivors=survivors,
        sampled=total_over_processes(rows),
        breaks=total_over_processes(breaks),
        triggered=total_over_processes(triggered),
    )


def budget_of(progress: SuiteProgress) -> dict[str, dict]:
    """The sampled stages' records as results.json keeps them (without the local rows)."""
    return {
        name: {k: v for k, v in entry.items() if k != "rows"}
        for name, entry in progress.budget.items()
        if "escalated" in entry
    }


__all__ = ["REST", "StageRun", "budget_of", "run_stage"]
