"""Sharded evaluation: each process of a torch.distributed group attacks its share of the
examples, and the per-example records are gathered so that every process holds the whole
set's curves and worst case, equal to one process's (see ``docs/guides/scale.md``).

The shares are interleaved (process r of N takes examples r, r + N, r + 2N, ...): a data set
stored grouped by class, with robust (costly) classes together, still gives every process the
same mix of cheap and costly examples, so that none waits long for the others.

Every per-example quantity is gathered as it is (broken eps, breaking attack, kept images), and
every count is summed (survivors, gradient and forward evaluations, seconds); accuracies,
intervals and warnings are then computed from the whole set, never averaged over shards. In
one process all of this is the identity.
"""

from __future__ import annotations

import dataclasses
import statistics

import torch

from robustlab.distributed import gather_objects, rank, world_size
from robustlab.evaluation.checks import gradient_free_warnings
from robustlab.evaluation.grid import EpsCurve, EpsPoint
from robustlab.evaluation.stats import wilson_interval
from robustlab.evaluation.worst_case_result import WorstCaseResult


def shard_examples(
    images: torch.Tensor, labels: torch.Tensor, sharded: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This process's interleaved share of the examples: (images, labels, their indices); all
    of them unless ``sharded``."""
    step = world_size() if sharded else 1
    ids = torch.arange(rank() if sharded else 0, len(labels), step)
    return images[ids], labels[ids], ids


def _rows(tensor: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Every shard's rows of a CPU tensor, put back in the whole set's order (``order``: the
    gathered example indices); gathered as objects, so any backend (nccl too) carries them."""
    joined = torch.cat(gather_objects(tensor.detach().cpu()))
    whole = torch.empty_like(joined)
    whole[order] = joined
    return whole


def _gather_point(point: EpsPoint, n: int) -> EpsPoint:
    """One curve point of the whole set from every shard's (survivors and costs summed)."""
    survivors = round(point.accuracy * point.n)
    shards = gather_objects((survivors, point.grad_evals, point.seconds, point.fooled_norms))
    total = sum(s[0] for s in shards)
    norms = None if point.fooled_norms is None else [x for s in shards for x in s[3]]
    return EpsPoint(
        eps=point.eps,
        accuracy=total / max(n, 1),
        ci=wilson_interval(total, n),
        grad_evals=sum(s[1] for s in shards),
        seconds=sum(s[2] for s in shards),
        n=n,
        median_norm=statistics.median(norms) if norms else None,
        fooled_norms=norms,
    )


def gather_curve(curve: EpsCurve, order: torch.Tensor) -> EpsCurve:
    """``curve`` of this shard as the whole set's curve (``order``: the gathered indices)."""
    n = len(order)
    correct = gather_objects(round(curve.clean_accuracy * curve.n))
    merged = dataclasses.replace(
        curve,
        clean_accuracy=sum(correct) / max(n, 1),
        n=n,
        points=[_gather_point(p, n) for p in curve.points],
        broken_eps=None if curve.broken_eps is None else _rows(curve.broken_eps, order),
    )
    merged.adversarial = {t: _rows(x, order) for t, x in sorted(curve.adversarial.items())}
    return merged


def gather_worst_case(result: WorstCaseResult, order: torch.Tensor) -> WorstCaseResult:
    """The whole set's worst case from every shard's: records gathered, costs summed, the
    gradient-free warning recomputed on the whole set."""
    by: list[str | None] = [None] * len(order)
    gathered = [name for part in gather_objects(result.broken_by) for name in part]
    for i, name in zip(order.tolist(), gathered, strict=True):
        by[i] = name
    costs = gather_objects(result.attack_cost)
    cost = {
        attack: {key: sum(c[attack][key] for c in costs) for key in values}
        for attack, values in result.attack_cost.items()
    }
    merged = dataclasses.replace(
        result, broken_eps=_rows(result.broken_eps, order), broken_by=by, attack_cost=cost
    )
    merged.adversarial = {t: _rows(x, order) for t, x in sorted(result.adversarial.items())}
    merged.warnings = gradient_free_warnings(merged)
    return merged


def gather_evaluation(
    curves: dict[str, EpsCurve], worst: WorstCaseResult, correct: torch.Tensor, ids: torch.Tensor
) -> tuple[dict[str, EpsCurve], WorstCaseResult, torch.Tensor]:
    """Every shard's curves, worst case and clean-correct mask as the whole set's (identity in
    one process); ``ids``: this shard's example indices."""
    if world_size() == 1:
        return curves, worst, correct
    order = torch.cat(gather_objects(ids.cpu()))
    curves = {key: gather_curve(c, order) for key, c in curves.items()}
    return curves, gather_worst_case(worst, order), _rows(correct, order)


__all__ = ["gather_curve", "gather_evaluation", "gather_worst_case", "shard_examples"]
