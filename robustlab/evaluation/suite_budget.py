"""The suite's budget: which attack runs, at what budget, on which of the survivors.

A suite is a sequence of stages, each one attack at one budget. Most stages attack every
survivor. A *sampled* stage is the full budget of an attack whose reduced budget already ran on
every survivor (APGD-T's nine targets after its first three, Square's 5,000 queries after 500):
it first attacks a random sample of the survivors, keyed by the suite's seed and the examples'
ids, and attacks every other survivor only when there is evidence of work to do there: the
sample broke an example, or the stage's trigger (e.g. the reduced Square) broke one anywhere.
When neither happened, the card states what ran and the 95% Clopper-Pearson upper bound on the
share of survivors the full budget would have broken beyond the reduced one: with 0 breaks in
k sampled survivors, 1 - 0.05 ** (1 / k) (4.6% for k = 64).

The sample and the decision are the same in one process, N processes (every rank sees the
whole set's candidates and breaks, `robustlab.distributed.gather_objects`) and a resumed run
(the decision is kept in the run's state).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
from scipy.stats import beta

from robustlab.attacks.row_random import example_seeds
from robustlab.distributed import gather_objects

CONFIDENCE = 0.95
# Survivors that get a sampled stage's full budget before it may skip the rest: 0 breaks in 64
# bound the share the full budget would break beyond the reduced one below 4.6% (95%). Its
# cost is fixed, so on a large set (10,000 CIFAR-10 images) it is a few percent of the full
# budget's; on a few hundred images it is most of it.
SAMPLE = 64


@dataclass(frozen=True)
class Stage:
    """One stage of a suite.

    ``name`` keys its cost and progress; ``attack`` is what ``broken_by`` credits (``apgd_ce``,
    ``apgd_t``, ``square``, ``apgd_dlr``); ``budget`` its steps (APGD) or queries (Square);
    ``targets`` APGD-T's targets. ``sample`` > 0: a sampled stage (see the module docstring),
    ``reduced`` the budget every survivor already had from the stage before, ``trigger`` a
    stage whose breaks send this one to every survivor.
    ``skip_at_most`` > 0: a reduced stage that does not run when the whole set has at most that
    many survivors, since the sampled full budget after it then runs on all of them anyway.
    """

    name: str
    attack: str
    budget: int
    targets: int = 0
    sample: int = 0
    reduced: int = 0
    trigger: str | None = None
    skip_at_most: int = 0


def _plan(ce: int, t: int, targets: int, queries: int) -> tuple[Stage, ...]:
    """The full protocol: every attack at its whole budget on every survivor."""
    return (
        Stage("apgd_ce", "apgd_ce", ce),
        Stage("apgd_t", "apgd_t", t, targets),
        Stage("square", "square", queries),
    )


PLANS: dict[str, tuple[Stage, ...]] = {
    # The default is the full protocol: on a few hundred images the sample is most of the
    # survivors and "sampled" cost more than it (1.45x on a PGD-AT MNIST model, results page).
    "standard": _plan(100, 100, 9, 5000),
    # Opt-in: pays off only where survivors far outnumber the sample (CIFAR-10 scale).
    "sampled": (
        Stage("apgd_ce", "apgd_ce", 100),
        Stage("apgd_t", "apgd_t", 100, 3, skip_at_most=SAMPLE),
        # The full budgets are the reference's attacks, same seeds: the sample measures what
        # `reference` would break beyond the reduced budgets (the first three targets rerun
        # as they ran, a third of the stage's cost, so the comparison is exact).
        Stage("apgd_t_full", "apgd_t", 100, 9, sample=SAMPLE, reduced=3),
        Stage("square", "square", 500, skip_at_most=SAMPLE),
        Stage("square_full", "square", 5000, sample=SAMPLE, reduced=500, trigger="square"),
    ),
    "reference": _plan(100, 100, 9, 5000),
    "fast": _plan(100, 100, 3, 1000),
}
# A randomized forward: AutoAttack's "rand" protocol, APGD-CE then untargeted APGD-DLR, each
# with EOT gradients, whatever the suite.
RANDOMIZED = (Stage("apgd_ce", "apgd_ce", 100), Stage("apgd_dlr", "apgd_dlr", 100))


def suite_plan(suite: str, norm: str, randomized: bool, has_square: bool) -> tuple[Stage, ...]:
    """The stages of ``suite`` (no Square stage where ``has_square`` is false, e.g. L1)."""
    if randomized:
        return RANDOMIZED
    return tuple(s for s in PLANS[suite] if has_square or s.attack != "square")


def keyed_sample(
    candidates: torch.Tensor, ids: torch.Tensor, *, seed: int, stage: str, size: int
) -> tuple[torch.Tensor, int]:
    """(the sampled rows among ``candidates``, how many candidates the whole set has): the
    ``size`` candidates of the whole set with the smallest keys, a key being a hash of the
    suite's seed, the stage and the example's id, so that any shard or resumed run samples the
    same examples."""
    salt = zlib.crc32(stage.encode())
    keys = example_seeds(int(example_seeds(seed, torch.tensor([salt]))[0]), ids)
    everyone = torch.cat(gather_objects(keys[candidates.cpu()]))
    total = len(everyone)
    if total <= size:
        return candidates.clone(), total
    threshold = everyone.sort().values[size - 1]
    return candidates & (keys <= threshold), total


def total_over_processes(count: int) -> int:
    """``count`` summed over the processes of a sharded run (itself in one process)."""
    return sum(gather_objects(int(count)))


def upper_bound(breaks: int, sampled: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a share, from ``breaks`` in ``sampled``."""
    if sampled <= 0:
        return 1.0
    if breaks >= sampled:
        return 1.0
    return float(beta.ppf(confidence, breaks + 1, sampled - breaks))


def budget_record(
    stage: Stage, *, survivors: int, sampled: int, breaks: int, triggered: int
) -> dict:
    """What a sampled stage did, for results.json and the card: its survivors, the sample and
    its breaks, whether it went on to every survivor (and why) and, when not, the bound."""
    escalated = sampled < survivors and (breaks > 0 or triggered > 0)
    skipped = sampled < survivors and not escalated
    return {
        "attack": stage.attack,
        "full": stage.targets if stage.targets else stage.budget,  # targets or queries
        "reduced": stage.reduced,
        "survivors": survivors,
        "sampled": sampled,
        "sample_breaks": breaks,
        "trigger": stage.trigger,
        "trigger_breaks": triggered,
        "escalated": escalated,
        "all_survivors": not skipped,
        "confidence": CONFIDENCE,
        "bound": upper_bound(breaks, sampled) if skipped else 0.0,
    }


def budget_sentence(name: str, record: dict, n: int) -> str:
    """One plain sentence on what a sampled stage ran and, where it skipped survivors, the
    bound on what the full budget would have found beyond it."""
    what = _budget_words(record["attack"], record["full"])
    reduced = _budget_words(record["attack"], record["reduced"])
    survivors, sampled = record["survivors"], record["sampled"]
    if sampled >= survivors:
        return f"{what} ran on all {survivors} survivors ({name})"
    if record["escalated"]:
        why = (
            f"the sample of {sampled} gave {record['sample_breaks']} break(s)"
            if record["sample_breaks"]
            else f"{record['trigger']} broke {record['trigger_breaks']} example(s)"
        )
        return f"{what} ran on all {survivors} survivors ({name}: {why})"
    share = record["bound"]
    most = math.floor(share * survivors)
    return (
        f"{what} ran on a random {sampled} of {survivors} survivors, {reduced} on all ({name}): "
        f"{record['sample_breaks']} break(s) in the sample, so the full budget would break fewer "
        f"than {share:.1%} of the survivors beyond it (at most {most} examples, "
        f"{most / max(n, 1):.1%} of n at any eps; {record['confidence']:.0%} Clopper-Pearson)"
    )


def _budget_words(attack: str, budget: int) -> str:
    if attack == "square":
        return f"Square at {budget} queries"
    return f"APGD-T with {budget} targets"


__all__ = [
    "CONFIDENCE",
    "PLANS",
    "RANDOMIZED",
    "SAMPLE",
    "Stage",
    "budget_record",
    "budget_sentence",
    "keyed_sample",
    "suite_plan",
    "total_over_processes",
    "upper_bound",
]
