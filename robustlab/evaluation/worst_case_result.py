"""The per-example worst case over an eps grid: which eps first broke each example, and by which
attack; accuracies, Wilson intervals, the results.json fragment and the per-example record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from robustlab.evaluation.stats import wilson_interval
from robustlab.fileio import write_json_atomic

CLEAN = "clean"  # broken_by of an example misclassified without any attack
GRADIENT_FREE = "square"  # the suite's gradient-free attack
# When Square's breaks mean masking (scripts/calibrate_checks.py measures the rule): at some eps,
# Square first broke at least this many examples AND this share of the evaluated ones. A single
# break is noise on undefended models (a 100-step APGD misses a borderline example now and then).
GRADIENT_FREE_MIN_COUNT = 3
GRADIENT_FREE_MIN_SHARE = 0.02


def eps_key(eps: float) -> str:
    """The results.json key of an eps: ``repr(float(eps))``."""
    return repr(float(eps))


@dataclass(repr=False)
class WorstCaseResult:
    """Per-example worst case over a sequence of attacks on an eps grid.

    ``broken_eps[i]``: smallest eps at which example i was broken (0 when misclassified clean,
    ``inf`` when never); ``broken_by[i]``: the attack that broke it first (``"clean"``, or None
    when never). ``attack_cost[attack]``: ``{"grad_evals", "forward_evals", "seconds"}`` summed
    over the grid (forward_evals: images forwarded without a gradient, Square's queries).
    ``adversarial[eps]``: the suite's kept images (see `worst_case`), when asked for.
    ``eot_iter``/``draws``: how a randomized model was attacked and judged (1: deterministic).
    ``budget[stage]``: what a sampled stage of the suite ran (its survivors, sample, breaks,
    whether it went on to every survivor) and, where it did not, the 95% bound on the share of
    survivors its full budget would have broken (`robustlab.evaluation.suite_budget`).
    """

    suite: str
    norm: str
    eps: list[float]
    broken_eps: torch.Tensor
    broken_by: list[str | None]
    attack_cost: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    adversarial: dict[float, torch.Tensor] = field(default_factory=dict, repr=False)
    eot_iter: int = 1  # gradients averaged per APGD step (robustlab.evaluation.eot)
    draws: int = 1  # forwards whose majority is each prediction
    # per sampled stage: what ran and the bound on what it skipped (suite_budget.budget_record)
    budget: dict[str, dict] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.broken_eps)

    @property
    def accuracy(self) -> list[float]:
        """Worst-case accuracy at each eps of the grid."""
        return [self.survivors(e) / max(self.n, 1) for e in self.eps]

    @property
    def ci(self) -> list[tuple[float, float]]:
        """95% Wilson interval of each accuracy."""
        return [wilson_interval(self.survivors(e), self.n) for e in self.eps]

    def __repr__(self) -> str:
        accuracy = ", ".join(
            f"{eps_key(e)}: {a:.4f}" for e, a in zip(self.eps, self.accuracy, strict=True)
        )
        return (
            f"WorstCaseResult(suite={self.suite!r}, norm={self.norm!r}, n={self.n}, "
            f"accuracy={{{accuracy}}}, masking={self.masking})"
        )

    def gradient_free_breaks(self) -> dict[str, int]:
        """Per eps key: the examples Square broke first there, which every gradient attack
        (and every prior attack) had missed at that eps."""
        return {k: v.get(GRADIENT_FREE, 0) for k, v in self.first_broken_by().items()}

    @property
    def masking(self) -> bool:
        """Whether the gradient-free attack broke enough examples the gradient attacks missed
        to mean masking: at some eps at least ``GRADIENT_FREE_MIN_COUNT`` examples and
        ``GRADIENT_FREE_MIN_SHARE`` of the evaluated ones."""
        needed = max(GRADIENT_FREE_MIN_COUNT, GRADIENT_FREE_MIN_SHARE * self.n)
        return any(count >= needed for count in self.gradient_free_breaks().values())

    def survivors(self, eps: float) -> int:
        return int((self.broken_eps > eps).sum())

    def first_broken_by(self) -> dict[str, dict[str, int]]:
        """Per eps key: how many examples each attack was the first to break there."""
        table: dict[str, dict[str, int]] = {eps_key(e): {} for e in self.eps}
        for at, by in zip(self.broken_eps.tolist(), self.broken_by, strict=True):
            if by is not None and by != CLEAN and eps_key(at) in table:
                counts = table[eps_key(at)]
                counts[by] = counts.get(by, 0) + 1
        return table

    def to_results(self) -> dict:
        """The results.json fragment (merge ``robust_accuracy*`` into the job's own dicts)."""
        keys = [eps_key(e) for e in self.eps]
        return {
            "robust_accuracy": {"worst_case": dict(zip(keys, self.accuracy, strict=True))},
            "robust_accuracy_ci": {
                "worst_case": {k: [lo, hi] for k, (lo, hi) in zip(keys, self.ci, strict=True)}
            },
            "worst_case": {
                "suite": self.suite,
                "norm": self.norm,
                "n": self.n,
                "first_broken_by": self.first_broken_by(),
                "attack_cost": {k: dict(v) for k, v in self.attack_cost.items()},
                "masking": self.masking,
                "eot": {"eot_iter": self.eot_iter, "draws": self.draws},
                "budget": {k: dict(v) for k, v in self.budget.items()},
            },
            "warnings": list(self.warnings),
        }

    def save_record(self, path: str | Path) -> Path:
        """Write the per-example record as JSON: for each example the smallest eps that broke
        it (null: never) and the attack that did."""
        eps = [None if e == float("inf") else e for e in self.broken_eps.tolist()]
        record = {"suite": self.suite, "norm": self.norm, "eps_grid": self.eps}
        record |= {"broken_eps": eps, "broken_by": self.broken_by}
        write_json_atomic(path, record)  # creates the folder; a reader never sees half a file
        return Path(path)

    def combined(
        self,
        others: Mapping[str, torch.Tensor],
        images: Mapping[str, torch.Tensor] | None = None,
    ) -> WorstCaseResult:
        """This result merged with other attacks' per-example broken eps (e.g. PGD curves):
        an example counts as broken at the smallest eps any of them reached, credited to the
        attack that got there first (ties go to the earlier entry, ``self`` first).

        ``images[name]``: that attack's adversarial images (all rows); the kept images of the
        suite then take the rows it now breaks first, so they still give the worst case."""
        broken, by = self.broken_eps.clone(), list(self.broken_by)
        for name, other in others.items():
            other = snap_to_grid(other.cpu().double(), self.eps)
            for i in (other < broken).nonzero().squeeze(1).tolist():
                broken[i], by[i] = other[i], name
        cost = dict(self.attack_cost)
        merged = WorstCaseResult(self.suite, self.norm, self.eps, broken, by, cost, self.warnings)
        merged.eot_iter, merged.draws = self.eot_iter, self.draws
        merged.budget = {k: dict(v) for k, v in self.budget.items()}
        merged.adversarial = {eps: kept.clone() for eps, kept in self.adversarial.items()}
        for name, adv in (images or {}).items():
            taken = torch.tensor([credit == name for credit in by], dtype=torch.bool)
            for eps, kept in merged.adversarial.items():
                rows = taken & (broken <= eps)
                kept[rows] = adv[rows].to(kept.dtype)
        return merged


def snap_to_grid(broken_eps: torch.Tensor, grid: Sequence[float]) -> torch.Tensor:
    """Each broken eps moved up to the smallest grid eps >= it (inf beyond the grid): breaking
    an example at eps e breaks it at every larger eps. 0 (misclassified clean) stays 0."""
    grid_t = torch.tensor(sorted(grid) + [float("inf")], dtype=broken_eps.dtype)
    snapped = grid_t[torch.searchsorted(grid_t, broken_eps, right=False)]
    return torch.where(broken_eps <= 0, broken_eps, snapped)


__all__ = [
    "CLEAN",
    "GRADIENT_FREE",
    "GRADIENT_FREE_MIN_COUNT",
    "GRADIENT_FREE_MIN_SHARE",
    "WorstCaseResult",
    "eps_key",
    "snap_to_grid",
]
